"""Hand-written prose for the built-in corpus: everyday life, seasons, food, travel, science and short stories.

Written for chowa (no third-party text). Japanese paragraphs mix polite (です/ます) and plain (だ/である) style on
purpose, so a model sees both. `DOCS` are multi-line documents (recipes, letters, lists, a timetable with tabs)
that exercise newlines and indentation in the JSONL corpus.

Run as (from Python):
    from tools.builtin_data.prose import EN_PROSE, JA_PROSE, DOCS
"""

from __future__ import annotations

EN_PROSE: tuple[str, ...] = (
    "Every morning the baker on the corner opens his shutters at half past five. The street is still dark, but "
    "the smell of warm bread reaches the bus stop long before the first bus does. People who wait there have "
    "learned to bring a few coins, just in case.",
    "Spring arrives slowly in the hills. First the snow on the north side of the fields turns grey and thin, then "
    "the streams get louder, and one day the plum trees are white with blossom although the wind is still cold.",
    "Summer evenings are long. Children play in the park until the sky turns orange, and their parents call them "
    "home three or four times before anyone listens. Somewhere a radio plays an old song, and the cicadas join in.",
    "In autumn the mountain roads fill with cars. Everybody wants to see the red and yellow leaves, so the small "
    "restaurants at the top sell out of noodles by noon. The smart travellers bring rice balls from home.",
    "Winter is the season for soup. A pot of vegetables, a little miso and some tofu will warm a whole family, "
    "and the window above the stove fogs up so that nobody can see the snow falling outside.",
    "Water boils at one hundred degrees Celsius at sea level. On a high mountain the air pressure is lower, so "
    "water boils at a lower temperature, and pasta takes longer to cook even though the pot is bubbling.",
    "The Moon goes around the Earth about once every twenty-seven days. We always see the same side of it, "
    "because it turns on its axis exactly as fast as it travels around us.",
    "Light from the Sun takes about eight minutes to reach the Earth. When you look at the Sun at sunset, you see "
    "it as it was eight minutes earlier. Starlight is older still: some of it left its star thousands of years ago.",
    "Plants make their own food from light, water and carbon dioxide. This process is called photosynthesis, and "
    "the oxygen it releases is the oxygen that we and almost every other animal breathe.",
    "A year has twelve months, and a week has seven days. Most months have thirty or thirty-one days; February has "
    "twenty-eight, or twenty-nine in a leap year. A leap year comes every four years, with a few exceptions.",
    "Mia keeps a small notebook in her bag. Whenever she hears a Japanese word she does not know, she writes it "
    "down with its reading in hiragana. After a month the notebook was full, and she bought a second one.",
    "Ken missed the last train home. He sat on a bench at the station and counted the lights in the windows of "
    "the apartment building across the road: thirty-two. At midnight a taxi finally came.",
    "The library in our town is small but quiet. On rainy days it is full of students, and the librarian lets "
    "them stay until the last one has finished, even if that is long after closing time.",
    "Travelling by train is a good way to see a country. You can watch rice fields, rivers and little towns pass "
    "by the window, eat a lunch box from the station, and arrive in the middle of the city, not at its edge.",
    "Our grandmother grows tomatoes, cucumbers and beans in a garden behind her house. In August there are too "
    "many to eat, so every neighbour on the street gets a bag of vegetables whether they want one or not.",
    "A cat sat on the wall all afternoon, watching the birds in the tree. It never tried to catch one. When the "
    "sun went down, it stretched, yawned and walked home for dinner as if that had been the plan all along.",
    "Counting is one of the first things children learn: one, two, three, four, five. Later they learn that the "
    "same numbers can be written with digits, 1, 2, 3, 4, 5, and that adding two numbers means counting on.",
    "To make good rice, wash it in cold water until the water is almost clear, let it soak for half an hour, and "
    "cook it with a little more water than rice. Do not open the lid while it steams.",
    "The weather report said it would be sunny, so nobody took an umbrella. At three o'clock the rain began, and "
    "the whole office stood at the door of the building, looking at the sky and waiting.",
    "Sound travels through air at about three hundred and forty metres per second. That is why you see lightning "
    "before you hear thunder: count the seconds between them and divide by three to get the distance in kilometres.",
    "Hana wanted to run a marathon. She began with one kilometre a day, then two, then five. A year later she "
    "crossed the finish line of her first race, slowly, smiling, with her family cheering at the side of the road.",
    "Bees visit flowers to collect nectar, and as they do so they carry pollen from one flower to another. "
    "Without them many fruits, such as apples and strawberries, would be much harder to grow.",
    "The post office opens at nine. Taro went at a quarter to nine, so he was first in line, but he had forgotten "
    "the letter on his desk at home. He bought a stamp anyway, to save time tomorrow.",
    "When you learn a new language, small words matter most: yes, no, thank you, please, where, how much. With "
    "twenty such words and a smile, a traveller can buy a ticket, find a hotel and order dinner.",
    "A river begins as rain on a mountain. The water runs down in small streams, the streams meet and grow, and "
    "after a long journey through forests, fields and cities, the river reaches the sea.",
    "Sam likes to cook on Sundays. He makes a big pot of curry, eats some for lunch and keeps the rest in the "
    "fridge. By Wednesday the curry tastes even better, and by Friday it is gone.",
    "The oldest tree in the park is a camphor tree more than three hundred years old. Its trunk is so wide that "
    "four children holding hands cannot reach around it. In summer its shade is the coolest place in town.",
    "Clocks divide the day into twenty-four hours, each hour into sixty minutes, and each minute into sixty "
    "seconds. So a day has one thousand four hundred and forty minutes, and eighty-six thousand four hundred seconds.",
    "On the first day of the new year many families eat special food together and visit a shrine or a temple. "
    "The streets are quiet, the shops are closed, and the air feels fresh and new.",
    "Yuki found an old map in a box of her father's books. It showed the town as it was fifty years ago: there "
    "was no station yet, the river ran where the main road is today, and the school was a small wooden building.",
    "Ice floats because water expands when it freezes. This is unusual: most substances are denser as solids. "
    "Because of it, lakes freeze from the top down, and fish can survive the winter in the water beneath.",
    "A good cup of tea needs water that is hot but not boiling, fresh leaves, and a little patience. Pour, wait "
    "a minute, and pour again into each cup in turn so that everyone gets the same strength.",
    "The bicycle is one of the most efficient machines people have built. A rider on a bicycle uses less energy "
    "to travel a kilometre than a walker does, and far less than any car.",
    "Every evening the old man fed the ducks at the pond. He never missed a day, not even in the rain. When he "
    "moved away, the children of the neighbourhood took turns, so the ducks never noticed.",
)

JA_PROSE: tuple[str, ...] = (
    "毎朝、角のパン屋は五時半にシャッターを開けます。まだ外は暗いのですが、焼きたてのパンの香りは一番のバスより先にバス停に届きます。",
    "春は山からゆっくりやって来る。畑の北側の雪が灰色に薄くなり、小川の音が大きくなって、ある日、風はまだ冷たいのに梅の花が白く咲いている。",
    "夏の夕方は長いです。子どもたちは空がオレンジ色になるまで公園で遊び、親に何度も呼ばれてからやっと家に帰ります。",
    "秋になると、山の道は車でいっぱいになる。みんな赤や黄色の葉を見たいのだ。頂上の小さな食堂では、昼までに麺が売り切れてしまう。",
    "冬はスープの季節です。野菜と豆腐と少しの味噌があれば、家族みんなが温まります。台所の窓が曇って、外の雪は見えなくなります。",
    "水は海の高さでは百度で沸騰します。高い山の上では気圧が低いので、水はもっと低い温度で沸騰し、料理に時間がかかります。",
    "月は約二十七日で地球の周りを一周する。月はいつも同じ面を地球に向けている。自転と公転の速さが同じだからである。",
    "太陽の光が地球に届くまで、約八分かかります。夕日を見るとき、私たちは八分前の太陽を見ているのです。",
    "植物は光と水と二酸化炭素から自分で栄養を作ります。これを光合成といいます。そのときに出る酸素を、私たちは毎日吸っています。",
    "一年は十二か月で、一週間は七日です。ほとんどの月は三十日か三十一日ですが、二月は二十八日で、うるう年には二十九日になります。",
    "ミアはかばんに小さなノートを入れている。知らない日本語を聞くと、ひらがなで読み方を書いておく。一か月でノートはいっぱいになった。",
    "健は終電に乗り遅れた。駅のベンチに座って、向かいのマンションの明かりを数えた。三十二あった。十二時になって、やっとタクシーが来た。",
    "私たちの町の図書館は小さいですが、とても静かです。雨の日は学生でいっぱいになります。",
    "電車の旅は、その国を知るのにいい方法です。窓から田んぼや川や小さな町を眺め、駅で買った弁当を食べ、町の真ん中に着きます。",
    "祖母は家の裏の庭でトマトやきゅうりや豆を育てている。八月には食べきれないほど採れるので、近所の人はみんな野菜を一袋もらう。",
    "猫が午後じゅう塀の上に座って、木の鳥を見ていた。一羽も捕まえようとはしなかった。日が沈むと、猫は伸びをして、あくびをして、夕ご飯を食べに帰っていった。",
    "数を数えることは、子どもが最初に覚えることの一つです。いち、に、さん、し、ご。やがて、同じ数を1、2、3、4、5と数字でも書けることを覚えます。",
    "おいしいご飯を炊くには、水が澄むまで米を洗い、三十分ほど水につけておきます。炊いている間はふたを開けてはいけません。",
    "天気予報は晴れだと言っていたので、だれも傘を持ってこなかった。三時に雨が降り始め、会社のみんなが入り口に立って空を見上げた。",
    "音は空気の中を一秒に約三百四十メートル進みます。だから雷は、光が見えてから音が聞こえます。",
    "花はマラソンを走りたいと思った。最初は一日一キロ、次に二キロ、そして五キロ。一年後、花は家族の声援の中、笑顔でゴールした。",
    "ミツバチは蜜を集めるために花を訪れ、そのとき花粉を運びます。ミツバチがいなければ、りんごやいちごを育てるのはずっと難しくなります。",
    "郵便局は九時に開く。太郎は八時四十五分に行ったので一番だったが、手紙を家の机の上に忘れてきた。それでも切手だけは買っておいた。",
    "新しい言葉を学ぶとき、いちばん大切なのは小さな言葉です。はい、いいえ、ありがとう、お願いします、どこ、いくら。この二十ほどの言葉と笑顔があれば、旅はなんとかなります。",
    "川は山に降る雨から始まる。小さな流れが集まって大きくなり、森や畑や町を通って、長い旅の終わりに海に着く。",
    "サムは日曜日に料理をするのが好きです。大きな鍋でカレーを作り、昼に少し食べて、残りを冷蔵庫に入れます。金曜日にはもうなくなっています。",
    "公園でいちばん古い木は、三百年以上生きているクスノキだ。幹がとても太くて、子ども四人が手をつないでも囲めない。",
    "時計は一日を二十四時間に分け、一時間を六十分に、一分を六十秒に分けます。だから一日は千四百四十分です。",
    "お正月には、多くの家族が一緒に特別な料理を食べ、神社やお寺にお参りします。通りは静かで、空気が新しく感じられます。",
    "由紀は父の本の箱の中で古い地図を見つけた。五十年前の町が描かれていた。駅はまだなく、今の大通りのところを川が流れていた。",
    "氷が水に浮くのは、水が凍るときに体積が増えるからです。そのため湖は上から凍り、魚は冬の間も下の水の中で生きられます。",
    "おいしいお茶をいれるには、沸騰したばかりではない熱いお湯と、新しい茶葉と、少しの我慢が必要です。",
    "自転車は人が作った中でもっとも効率のいい機械の一つだ。一キロ進むのに使うエネルギーは、歩くよりも少ない。",
    "おじいさんは毎日夕方に池のアヒルにえさをやっていました。雨の日も休みませんでした。おじいさんが引っ越すと、近所の子どもたちが代わりにえさをやるようになりました。",
    "梅雨の時期は、毎日のように雨が降ります。洗濯物が乾かないので困りますが、あじさいはこの季節がいちばんきれいです。",
    "駅前の小さなラーメン屋には、いつも行列ができている。店主は一人で、一度に六杯しか作らない。それでもみんな文句を言わずに待っている。",
    "日本の多くの家では、玄関で靴を脱ぎます。家の中を清潔に保つためです。初めて日本に来た人は、スリッパの多さに驚くことがあります。",
    "今日は朝から晴れていたので、布団を干しました。夜、ふかふかの布団に入ると、太陽のにおいがしました。",
    "富士山は日本でいちばん高い山で、高さは三千七百七十六メートルだ。夏の間だけ登ることができ、山頂で日の出を見る人も多い。",
    "弟は昨日、初めて自転車に乗れるようになりました。何度も転びましたが、あきらめませんでした。今日は一人で公園まで行きました。",
)

DOCS: tuple[str, ...] = (
    "Miso soup for two\n\nIngredients:\n\t400 ml water\n\t1 tablespoon miso\n\t100 g tofu\n\ta little green onion\n\n"
    "Steps:\n  1. Heat the water until it almost boils.\n  2. Cut the tofu into small cubes and add it.\n"
    "  3. Turn off the heat and stir in the miso.\n  4. Add the green onion and serve.",
    "味噌汁(二人分)\n\n材料:\n\t水 400ミリリットル\n\t味噌 大さじ1\n\t豆腐 100グラム\n\tねぎ 少し\n\n"
    "作り方:\n  1. 水を沸騰する直前まで温めます。\n  2. 豆腐を小さく切って入れます。\n"
    "  3. 火を止めて、味噌を溶かします。\n  4. ねぎを入れてできあがりです。",
    "Dear Yuki,\n\nThank you for your letter. It is already cold here, and this morning there was frost on the "
    "windows of the bus.\nI started learning to cook rice the way you showed me. It is getting better!\n\n"
    "See you in spring,\nMia",
    "由紀さんへ\n\nお手紙ありがとうございました。こちらはもう寒くなり、今朝はバスの窓に霜がついていました。\n"
    "教えてもらった方法でご飯を炊いています。だんだん上手になってきました。\n\n春に会いましょう。\nミア",
    "Bus timetable (weekdays)\nstop\tdepart\tarrive\nStation\t07:10\t07:25\nLibrary\t07:40\t07:52\n"
    "Hospital\t08:05\t08:20\nPark\t08:30\t08:41",
    "バスの時刻表(平日)\n停留所\t出発\t到着\n駅前\t7:10\t7:25\n図書館\t7:40\t7:52\n病院\t8:05\t8:20\n公園\t8:30\t8:41",
    "Shopping list\n- 6 eggs\n- 1 litre of milk\n- bread\n- 3 apples\n    (red ones, not green)\n- tea",
    "買い物メモ\n・卵 6個\n・牛乳 1リットル\n・パン\n・りんご 3個\n    (赤いもの)\n・お茶",
    "Haiku about rain\n\n    Rain on the tin roof,\n    the cat does not want to leave\n    the warm kitchen floor.",
    "雨の詩\n\n    屋根の上\n    雨の音聞く\n    猫と私",
    "Weekly plan\nMonday:\tlibrary after school\nTuesday:\tswimming\nWednesday:\tpiano\nThursday:\tfree\n"
    "Friday:\tcook dinner with father\nSaturday:\tpark\nSunday:\trest",
    "一週間の予定\n月曜日:\t放課後に図書館\n火曜日:\t水泳\n水曜日:\tピアノ\n木曜日:\tなし\n"
    "金曜日:\t父と夕ご飯を作る\n土曜日:\t公園\n日曜日:\t休み",
    "How to fold a paper crane\n\n1. Start with a square sheet of paper.\n2. Fold it in half both ways, then "
    "open it again.\n3. Fold it into a small square (the 'square base').\n   Tip: press every fold firmly.\n"
    "4. Fold the edges to the centre line to make a kite shape.\n5. Pull the neck and tail up, fold the head, "
    "and open the wings.",
    "日記\n\n十一月三日(金)晴れ\n朝、早く起きて公園を走った。\n昼は友達とおにぎりを食べた。\n\n"
    "十一月四日(土)雨\n一日中家で本を読んだ。\n夜、母と味噌汁を作った。",
    "def count_vowels(word):\n    total = 0\n    for letter in word:\n        if letter in 'aeiou':\n"
    "            total += 1\n    return total\n\n# count_vowels('banana') is 3",
    "Packing list for a weekend trip\n\nClothes\n\tT-shirts x2\n\tsweater x1\nOther\n\tumbrella\n\tcamera\n"
    "\tticket (do not forget!)",
)
