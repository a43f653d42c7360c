"""PPO: pure math (`losses`), value head and top-block branches (`heads`), policy/value/reference layouts
(`layouts`)."""
