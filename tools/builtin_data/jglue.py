"""The built-in JGLUE data root: small invented documents for all 8 tasks, in the files' published layouts.

Every file is what `chowa eval jglue --data-dir` reads from a real download (spec `jglue.md` §4: the same
paths, field names, label strings, JSON Lines vs one JSON document, CSV and TSV columns, the `exemplars.py`
module), so the folder runs each suite end to end on a CPU and shows what the real files look like. The content
is written here, not copied: everyday-knowledge questions, caption-like inference pairs, short product reviews,
passages about invented towns and people with extractive answers, quiz questions with five retrieved passages,
template news articles whose summary restates the lead, pronoun pairs and small arithmetic word problems. A
model that reads Japanese should beat chance on each; scores are not comparable with the model cards.

Each task has ~20 evaluation documents and a few-shot pool larger than any suite's shot count (mgsm: exactly
the 8 exemplars the real file has). One JAQKET dev record's answer passage sits beyond the first five, as in
the real file; the loader drops it, so dev holds 19 records and 18 load.

A 512-position model (the tiny preset) cannot run weblab's 5-shot mgsm-1.0-0.3 prompts (mgsm reserves 256
tokens and 0.3 prompts cannot be trimmed); the rinna suites and `--tasks ...,mgsm-1.0-0.3:0` run on 512.

Run as:
    python -m tools.builtin_data        # rewrites src/chowa/data/builtin/, this folder included
    chowa eval jglue --model out/sft --data-dir src/chowa/data/builtin/jglue --suite rinna-ja --limit 8
    run_jglue("out/sft", str(builtin_jglue_dir()), suite="weblab")      # from Python, installed or not
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from chowa.data.text import BUILTIN_DIR

JGLUE = "jglue/JGLUE/datasets"


def builtin_jglue_dir() -> Path:
    """The shipped data root, to pass as `--data-dir` / `run_jglue(data_dir=...)`."""
    return BUILTIN_DIR / "jglue"


def _rows(table: str) -> list[list[str]]:
    return [line.split("|") for line in table.strip().splitlines()]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


# --- JCommonsenseQA: question | answer | four distractors; the answer's position cycles through 0-4 ----------

JCQA_TRAIN = """
朝ご飯に卵を焼くときに使う道具は？|フライパン|まくら|えんぴつ|かさ|くつした
寒い冬に首に巻くものは？|マフラー|スプーン|はがき|じょうろ|せんぬき
手紙を送るときに封筒に貼るものは？|切手|靴|氷|布団|鏡
暗い部屋を明るくするものは？|電灯|砂糖|帽子|ほうき|財布
魚がたくさん泳いでいる場所は？|海|屋根|本棚|押し入れ|靴箱
髪を切ってもらう店は？|美容院|本屋|八百屋|銀行|郵便局
病気のときに診てもらう人は？|医者|大工|漁師|歌手|運転手
歯をみがくときに使うものは？|歯ブラシ|フォーク|定規|消しゴム|うちわ
一年のうちで一番暑い季節は？|夏|冬|春|秋|雪
牛からとれる白い飲み物は？|牛乳|お茶|コーヒー|ジュース|しょうゆ
鉛筆で書いた字を消すときに使う文房具は？|消しゴム|のり|ホチキス|定規|絵の具
電車に乗る前に駅で買うものは？|切符|花束|野菜|毛布|絵本
猫が好んで食べるものは？|魚|石|紙|砂|鉛筆
雪だるまを作ることができる季節は？|冬|夏|春|秋|梅雨
洗濯物を外で乾かすのに必要なものは？|日光|砂糖|塩|油|墨
本をたくさん借りられる場所は？|図書館|郵便局|駅|病院|銀行
時刻を知るために見るものは？|時計|財布|手袋|茶碗|箸
ご飯を食べるときに使う二本の棒は？|箸|鉛筆|ろうそく|はさみ|鍵
火事のときに呼ぶ車は？|消防車|郵便車|タクシー|自転車|バス
野菜を切るときに使う道具は？|包丁|定規|傘|歯ブラシ|ハンガー
"""
JCQA_VALID = """
鳥が空を飛ぶために使う体の部分は？|翼|しっぽ|くちばし|足|目
雨上がりの空に出ることがある七色のものは？|虹|雷|霧|星|月
のどがかわいたときに飲むものは？|水|砂|紙|石けん|粘土
夜空に光っている小さな点は？|星|雲|虹|夕日|霜
寝るときに頭を乗せるものは？|枕|皿|靴|鍋|棚
手を洗うときに使うものは？|石けん|砂糖|塩|米|みそ
写真を撮る道具は？|カメラ|はさみ|やかん|まな板|ほうき
雨の日に足がぬれないように履くものは？|長靴|手袋|帽子|眼鏡|腕時計
手紙を出すときに入れる赤い箱は？|ポスト|冷蔵庫|金庫|本棚|たんす
食べ物を冷やしておく家電は？|冷蔵庫|掃除機|洗濯機|扇風機|電子レンジ
部屋のほこりを吸い取る家電は？|掃除機|冷蔵庫|炊飯器|テレビ|電話
お米を炊く家電は？|炊飯器|掃除機|洗濯機|扇風機|ドライヤー
ぬれた髪を乾かす道具は？|ドライヤー|炊飯器|やかん|ほうき|ラジオ
子どもが勉強するために通う場所は？|学校|工場|空港|港|警察署
海で泳ぐときに着るものは？|水着|コート|背広|セーター|手袋
一週間は何日？|七日|三日|五日|十日|百日
朝に東の空から昇るものは？|太陽|月|北極星|流れ星|雲
信号で「止まれ」を表す色は？|赤|青|白|黒|紫
熱いお茶を入れて飲む器は？|湯のみ|ざる|かご|封筒|袋
誕生日のケーキに立てて火をつけるものは？|ろうそく|えんぴつ|はし|くぎ|ストロー
"""


def _jcqa(table: str, first_id: int) -> str:
    records = []
    for i, (question, answer, *distractors) in enumerate(_rows(table)):
        gold = i % 5
        choices = distractors[:gold] + [answer] + distractors[gold:]
        records.append({"q_id": first_id + i, "question": question,
                        **{f"choice{k}": c for k, c in enumerate(choices)}, "label": gold})
    return _jsonl(records)


# --- JNLI: premise | entailed | contradicting | neutral hypothesis; train and valid use different scenes ------

JNLI_TRAIN = """
男の子が公園でボールを蹴っている。|男の子が外で遊んでいる。|男の子がベッドで眠っている。|男の子はサッカー部に入っている。
女性が台所で野菜を切っている。|女性が料理の準備をしている。|女性がプールで泳いでいる。|女性は夕食にカレーを作るつもりだ。
白い犬が芝生の上を走っている。|犬が外にいる。|犬が家の中で寝ている。|犬は飼い主を追いかけている。
二人の男性がベンチに座って話している。|男性たちが座っている。|男性たちが走っている。|二人は古い友人だ。
電車が駅のホームに止まっている。|電車は動いていない。|電車が高速で走っている。|電車は満員だ。
子どもたちが教室で絵を描いている。|子どもたちが室内にいる。|子どもたちが海で泳いでいる。|子どもたちは絵のコンクールに応募する。
青いバスが雪の道を走っている。|バスが道を走っている。|バスが車庫に止まっている。|バスは空港に向かっている。
女の子が傘をさして歩いている。|女の子が歩いている。|女の子が座って本を読んでいる。|女の子は学校へ向かっている。
"""
JNLI_VALID = """
男性が自転車に乗って坂を下っている。|男性が自転車に乗っている。|男性が車を運転している。|男性は会社へ急いでいる。
猫が窓辺で日なたぼっこをしている。|猫が窓の近くにいる。|猫が木に登っている。|猫はおなかがすいている。
老人が川で釣りをしている。|老人が川のそばにいる。|老人が家でテレビを見ている。|老人は魚を三匹釣った。
少女がピアノを弾いている。|少女が楽器を演奏している。|少女がぐっすり眠っている。|少女はコンクールに出る予定だ。
数人の人がレストランで食事をしている。|人々が食事をしている。|レストランには誰もいない。|料理はとても高い。
飛行機が滑走路から飛び立とうとしている。|滑走路に飛行機がある。|飛行機が格納庫で修理されている。|飛行機は外国へ行く。
女性が海岸で犬と散歩している。|女性が海の近くにいる。|女性が一人で山に登っている。|犬は女性の飼い犬だ。
"""
JNLI_LABELS = ("entailment", "contradiction", "neutral")


def _jnli(table: str, first_id: int) -> str:
    records = []
    for scene, (premise, *hypotheses) in enumerate(_rows(table)):
        for k in range(3):
            label = (scene + k) % 3  # rotate the label order so the file does not repeat one pattern
            pair_id = first_id + 3 * scene + k
            records.append({"sentence_pair_id": str(pair_id), "yjcaptions_id": f"{first_id + scene}-{pair_id}",
                            "sentence1": premise, "sentence2": hypotheses[label], "label": JNLI_LABELS[label]})
    return _jsonl(records)


# --- MARC-ja: short product reviews; train takes the first 12 of each polarity, valid the other 10 ----------

MARC_POSITIVE = """
音がとてもきれいで、毎日このイヤホンで音楽を聴いています。買ってよかったです。
軽くて持ち運びやすい傘です。風の強い日でも壊れませんでした。
子どもが気に入って、毎晩この絵本を読んでとせがみます。
思っていたより丈夫なかばんで、荷物がたくさん入ります。大満足です。
説明書がわかりやすく、すぐに組み立てられました。おすすめです。
香りが良くて、飲むと気持ちが落ち着くお茶です。また買います。
画面が明るくて見やすいです。電池も長持ちします。
履き心地が良く、一日中歩いても足が痛くなりませんでした。
届くのが早く、梱包も丁寧でした。品質も期待以上です。
切れ味が抜群の包丁です。料理が楽しくなりました。
暖かくて肌触りの良い毛布です。冬はこれがないと眠れません。
値段の割にとても性能が良いです。家族にもすすめました。
小さいのに吸引力が強く、部屋がすぐにきれいになります。
色もデザインもかわいくて、毎日使うのが楽しみです。
とても静かな扇風機で、夜もぐっすり眠れます。
甘さがちょうど良く、家族みんなで喜んで食べました。
操作が簡単で、機械が苦手な母でもすぐに使えました。
しっかりした作りのいすで、長く座っていても疲れません。
写真で見たとおりの品物で、とても満足しています。
水筒の保温力がすばらしく、夕方まで温かいままでした。
文字が大きくて読みやすい辞書です。祖父も喜んでいます。
組み立ても簡単で、見た目もおしゃれな本棚です。
"""
MARC_NEGATIVE = """
一週間で壊れてしまいました。二度と買いません。
音が小さくて、ほとんど聞こえません。がっかりです。
写真と色が全然違いました。返品したいです。
箱がつぶれて届き、中身も傷だらけでした。
電池がすぐに切れてしまい、使い物になりません。
においがきつくて、とても使えませんでした。
サイズが小さすぎて、まったく入りませんでした。残念です。
味が薄くて、おいしくありませんでした。
ボタンが固くて押しにくく、すぐに使うのをやめました。
届くまでに一か月もかかりました。対応も悪かったです。
生地が薄くて、一度洗っただけで穴があきました。
値段が高いのに、品質はひどいものでした。
説明書が不親切で、最後まで組み立てられませんでした。
すぐに水がもれて、床がびしょびしょになりました。
充電してもすぐに電源が落ちます。不良品だと思います。
重すぎて持ち運べず、結局使わなくなりました。
部品が一つ足りず、問い合わせても返事がありません。
音がうるさくて、夜はとても使えません。
一回使っただけで取っ手が取れてしまいました。
期待していた味とまったく違い、残してしまいました。
画面がすぐに傷だらけになり、見えにくくなりました。
表示どおりの量が入っておらず、がっかりしました。
"""


def _marc(positive: list[str], negative: list[str], prefix: str) -> str:
    records = []
    for i, (good, bad) in enumerate(zip(positive, negative, strict=True)):
        pair = [(good, "positive"), (bad, "negative")]
        for sentence, label in pair if i % 3 else pair[::-1]:  # mostly alternating, not strictly
            records.append({"sentence": sentence, "label": label, "review_id": f"{prefix}{len(records):04d}"})
    return _jsonl(records)


# --- JSQuAD: article -> paragraphs -> (question, answers); valid questions carry two annotators' answers -----

JSQUAD_TRAIN = [
    ("みどり町", [
        ("みどり町は山のふもとにある小さな町である。町の人口はおよそ三千人で、主な産業はお茶の栽培である。",
         [("みどり町の主な産業は何か？", ["お茶の栽培"]), ("みどり町の人口はおよそ何人か？", ["三千人"])]),
        ("毎年十月には町の広場で収穫祭が開かれる。祭りでは新しいお茶がふるまわれ、多くの観光客が訪れる。",
         [("収穫祭は毎年何月に開かれるか？", ["十月"]), ("収穫祭はどこで開かれるか？", ["町の広場"])]),
    ]),
    ("星見台", [
        ("星見台は丘の上に建てられた市民天文台である。一九八五年に完成し、口径六十センチの望遠鏡を備えている。",
         [("星見台はどこに建てられたか？", ["丘の上"]), ("星見台の望遠鏡の口径はいくらか？", ["六十センチ"])]),
        ("毎月第二土曜日の夜には観望会が開かれる。晴れた日には土星の輪や木星の縞模様を見ることができる。",
         [("観望会はいつ開かれるか？", ["毎月第二土曜日の夜"]), ("晴れた日には木星の何が見えるか？", ["縞模様"])]),
    ]),
    ("青空鉄道", [
        ("青空鉄道は海沿いの三つの町を結ぶ小さな鉄道である。全長は十二キロで、駅は八つある。",
         [("青空鉄道は何を結ぶ鉄道か？", ["海沿いの三つの町"]), ("青空鉄道の駅はいくつあるか？", ["八つ"])]),
        ("車両は黄色に塗られており、地元では「ひよこ電車」と呼ばれている。夏には窓のない観光列車も走る。",
         [("車両は何色に塗られているか？", ["黄色"]), ("地元では車両を何と呼んでいるか？", ["ひよこ電車"])]),
    ]),
    ("森川ハル", [
        ("森川ハルは港町で生まれた画家である。子どものころから船の絵を好んで描いた。",
         [("森川ハルの職業は何か？", ["画家"]), ("森川ハルはどこで生まれたか？", ["港町"])]),
        ("二十歳で都会に出て、美術学校で油絵を学んだ。代表作は「朝の波止場」である。",
         [("森川ハルは美術学校で何を学んだか？", ["油絵"]), ("森川ハルの代表作は何か？", ["朝の波止場"])]),
    ]),
]
JSQUAD_VALID = [
    ("風車の丘公園", [
        ("風車の丘公園は川の東側に広がる公園である。園内には高さ二十メートルの白い風車が立っている。",
         [("風車の丘公園は川のどちら側にあるか？", ["東側", "川の東側"]),
          ("風車の高さは何メートルか？", ["二十メートル", "二十メートル"])]),
        ("春には約五万本のチューリップが咲き、多くの家族連れが訪れる。入園料は無料である。",
         [("春に咲く花は何か？", ["チューリップ", "約五万本のチューリップ"]),
          ("入園料はいくらか？", ["無料", "無料"])]),
    ]),
    ("白鳥湖", [
        ("白鳥湖は山あいにある湖で、冬になると北の国から白鳥が飛来する。湖の周りは一周およそ四キロである。",
         [("冬に北の国から飛来する鳥は何か？", ["白鳥", "白鳥"]),
          ("湖の周りは一周およそ何キロか？", ["四キロ", "およそ四キロ"])]),
        ("湖のほとりには小さな博物館があり、湖にすむ魚や鳥の標本が展示されている。博物館は月曜日が休みである。",
         [("博物館には何が展示されているか？", ["湖にすむ魚や鳥の標本", "魚や鳥の標本"]),
          ("博物館の休みは何曜日か？", ["月曜日", "月曜日"])]),
    ]),
    ("くるみ堂", [
        ("くるみ堂は駅前の商店街にあるパン屋である。店主の父が五十年前に開いた店で、くるみパンが名物である。",
         [("くるみ堂はどこにあるか？", ["駅前の商店街", "商店街"]),
          ("くるみ堂の名物は何か？", ["くるみパン", "くるみパン"])]),
        ("店は朝七時に開き、パンが売り切れると閉まる。週末には開店前から行列ができる。",
         [("店は朝何時に開くか？", ["七時", "朝七時"]), ("週末には開店前から何ができるか？", ["行列", "行列"])]),
    ]),
    ("山田ソウタ", [
        ("山田ソウタは北の町出身の陸上選手である。得意な種目は一万メートル走で、高校生のときに全国大会で優勝した。",
         [("山田ソウタの得意な種目は何か？", ["一万メートル走", "一万メートル走"]),
          ("山田ソウタはどこの出身か？", ["北の町", "北の町"])]),
        ("大学を卒業した後は実業団に入り、毎朝二十キロを走る練習を続けている。趣味は将棋である。",
         [("山田ソウタは毎朝何キロ走るか？", ["二十キロ", "二十キロ"]),
          ("山田ソウタの趣味は何か？", ["将棋", "将棋"])]),
    ]),
    ("雲海ロープウェイ", [
        ("雲海ロープウェイは麓の駅と山頂の展望台を結んでいる。所要時間は約八分で、一度に四十人が乗れる。",
         [("ロープウェイの所要時間はどれくらいか？", ["約八分", "八分"]),
          ("ロープウェイには一度に何人乗れるか？", ["四十人", "四十人"])]),
        ("秋の早朝には山頂から雲海が見えることがある。展望台には喫茶店があり、名物は山ぶどうのジュースである。",
         [("秋の早朝に山頂から見えることがあるものは何か？", ["雲海", "雲海"]),
          ("展望台の喫茶店の名物は何か？", ["山ぶどうのジュース", "山ぶどうのジュース"])]),
    ]),
]


def _jsquad(articles: list, first_article: int) -> str:
    data = []
    for a, (title, paragraphs) in enumerate(articles, start=first_article):
        out = []
        for p, (text, questions) in enumerate(paragraphs):
            context = f"{title} [SEP] {text}"
            qas = [{"id": f"a{a}p{p}q{q}", "question": question,
                    "answers": [{"text": answer, "answer_start": context.index(answer, len(title))}
                                for answer in answers], "is_impossible": False}
                   for q, (question, answers) in enumerate(questions)]
            out.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": out})
    return json.dumps({"version": "v1.1", "data": data}, ensure_ascii=False) + "\n"


# --- JAQKET v2: quiz question | answer (the title of its passage) | passage ----------------------------------

JAQKET_ENTRIES = """
日本で一番高い山は何でしょう？|富士山|富士山は静岡県と山梨県の境にある山で、高さは日本一である。
日本で一番面積が大きい湖は何でしょう？|琵琶湖|琵琶湖は滋賀県にある湖で、日本で最も面積が大きい。
日本で一番長い川は何でしょう？|信濃川|信濃川は長野県と新潟県を流れる、日本で最も長い川である。
都道府県の中で一番面積が広いのはどこでしょう？|北海道|北海道は日本の北にある島で、都道府県の中で最も面積が広い。
春に咲き、花見で楽しまれる花は何でしょう？|桜|桜は春に咲く花で、花見の季節には多くの人が木の下に集まる。
王将や飛車などの駒を使う盤上遊戯は何でしょう？|将棋|将棋は二人で遊ぶ盤上遊戯で、王将、飛車、角行などの駒を使う。
酢飯に魚などを合わせた日本料理は何でしょう？|寿司|寿司は酢飯に魚や卵などを合わせた日本料理である。
1964年に東京と大阪の間で開業した高速鉄道は何でしょう？|新幹線|新幹線は日本の高速鉄道で、最初の路線は1964年に東京と大阪の間で開業した。
太陽系の中心にある恒星は何でしょう？|太陽|太陽は太陽系の中心にある恒星で、地球に光と熱を届けている。
表面が赤く見えることから赤い惑星と呼ばれる星は何でしょう？|火星|火星は地球のすぐ外側を回る惑星で、表面が赤く見えるため赤い惑星と呼ばれる。
地球上で最も大きな動物は何でしょう？|シロナガスクジラ|シロナガスクジラは海にすむ哺乳類で、地球上で最も大きな動物である。
白と黒の毛を持ち、主に竹を食べる動物は何でしょう？|パンダ|パンダは中国の山地にすむ動物で、白と黒の毛を持ち、主に竹を食べる。
空を飛べないが泳ぎが得意な鳥は何でしょう？|ペンギン|ペンギンは飛ぶことのできない鳥で、海の中を上手に泳ぐ。
五・七・五の十七音で作る短い詩は何でしょう？|俳句|俳句は五・七・五の十七音からなる短い詩で、季語を入れるのが決まりである。
土俵の上で二人の力士が戦う競技は何でしょう？|相撲|相撲は土俵の上で二人の力士が押し合う競技で、日本の国技とされる。
帯を締めて着る日本の伝統的な衣服は何でしょう？|着物|着物は日本の伝統的な衣服で、帯を締めて着る。
表面の約七割が海におおわれた、私たちが住む惑星は何でしょう？|地球|地球は太陽の周りを回る三番目の惑星で、表面の約七割が海におおわれている。
白と黒の鍵盤を押して音を出す楽器は何でしょう？|ピアノ|ピアノは白と黒の鍵盤を押して音を出す楽器である。
地下から湧き出る温かい水で、入浴に使われるものは何でしょう？|温泉|温泉は地下から湧き出る温かい水のことで、日本各地に入浴施設がある。
大豆のしぼり汁を固めて作る白い食品は何でしょう？|豆腐|豆腐は大豆のしぼり汁を固めて作る、白くてやわらかい食品である。
秋に木の葉が赤や黄色に色づくことを何というでしょう？|紅葉|紅葉は秋に木の葉が赤や黄色に色づく現象で、多くの人が山へ見に行く。
夏から秋に強い風と大雨をもたらす熱帯低気圧は何でしょう？|台風|台風は南の海で生まれる熱帯低気圧で、夏から秋にかけて強い風と大雨をもたらす。
国会議事堂がある日本の首都はどこでしょう？|東京|東京は日本の首都で、国会議事堂や多くの会社の本社がある。
紙を折って鶴などの形を作る遊びは何でしょう？|折り紙|折り紙は紙を折って鶴や船などの形を作る伝統的な遊びである。
筆と墨で文字を美しく書く芸術は何でしょう？|書道|書道は筆と墨で文字を美しく書く芸術で、学校の授業でも習う。
雨上がりに太陽の光が水滴で分かれて見える七色の帯は何でしょう？|虹|虹は雨上がりに太陽の光が水滴で分かれて見える七色の帯である。
夏の夜に体の一部を光らせて飛ぶ昆虫は何でしょう？|蛍|蛍は夏の夜に体の一部を光らせて飛ぶ昆虫で、きれいな川の近くにすむ。
地下の岩盤がずれて地面が揺れる自然現象は何でしょう？|地震|地震は地下の岩盤がずれることで地面が揺れる自然現象である。
大豆と小麦と塩から作る黒い調味料は何でしょう？|醤油|醤油は大豆と小麦と塩から作る黒い色の調味料である。
金箔でおおわれた建物で有名な京都の寺は何でしょう？|金閣寺|金閣寺は京都にある寺で、金箔でおおわれた建物が有名である。
夜に光を放って船に位置を知らせる建物は何でしょう？|灯台|灯台は岬や港に立つ建物で、夜に光を放って船に位置を知らせる。
成長が早く、かぐや姫の物語にも登場する植物は何でしょう？|竹|竹は成長がとても早い植物で、かぐや姫の物語にも登場する。
二つの車輪をペダルでこいで進む乗り物は何でしょう？|自転車|自転車は二つの車輪をペダルでこいで進む乗り物である。
"""
JAQKET_TRAIN_COUNT = 14  # entries after these are dev questions; the last one is the dev record the loader drops


def _jaqket_record(index: int, entries: list[list[str]], answer_position: int, n_ctxs: int) -> dict:
    """Five (or more) retrieved passages: the answer's at `answer_position`, other entries' passages around it."""
    question, answer, _ = entries[index]
    others = [e for k, e in enumerate(entries[index + 1:] + entries[:index]) if answer not in e[2]]
    picked = others[:n_ctxs - 1]
    picked.insert(answer_position, entries[index])
    ctxs = [{"id": str(1000 * (index + 1) + k), "title": title, "text": text, "score": f"{90 - 3.5 * k:.2f}",
             "has_answer": answer in text} for k, (_, title, text) in enumerate(picked)]
    return {"qid": f"QACHOWA-{index + 1:04d}", "question": question, "answers": [answer], "ctxs": ctxs}


def _jaqket() -> tuple[str, str]:
    entries = _rows(JAQKET_ENTRIES)
    records = [_jaqket_record(i, entries, i % 5, 5) for i in range(len(entries) - 1)]
    # The retriever missed: only the sixth passage answers, so the loader (first five only) drops this record.
    records.append(_jaqket_record(len(entries) - 1, entries, 5, 6))
    train, dev = records[:JAQKET_TRAIN_COUNT], records[JAQKET_TRAIN_COUNT:]
    return (json.dumps(train, ensure_ascii=False, indent=1) + "\n", json.dumps(dev, ensure_ascii=False, indent=1)
            + "\n")


# --- XL-Sum (ja): template news about invented towns; the summary restates the lead ------------------------

XLSUM_TEMPLATES = [
    ("{town}で恒例の町民祭り、約{n}人が来場",
     "{town}で{month}月{day}日、恒例の町民祭りが開かれ、約{n}人が訪れた。",
     "{town}で{month}月{day}日、恒例の町民祭りが開かれた。会場の広場には約{n}人が訪れ、屋台や舞台の踊りを楽しんだ。"
     "実行委員会によると、来場者は昨年より一割ほど増えたという。町の担当者は「来年も多くの人に来てほしい」と話した。"),
    ("{town}に新しい図書館、初日に{n}人",
     "{town}に新しい市立図書館が開館し、初日に{n}人が利用した。",
     "{town}に新しい市立図書館が{month}月{day}日に開館した。初日には{n}人が利用し、子ども向けの読み聞かせ会も開かれた。"
     "図書館には約十万冊の本があり、夜八時まで利用できる。市は学習スペースも増やす予定だ。"),
    ("{town}で大雨、{n}世帯に避難指示",
     "{town}で記録的な大雨が降り、{n}世帯に避難指示が出された。",
     "{town}で{month}月{day}日、記録的な大雨が降った。町は川があふれるおそれがあるとして、{n}世帯に避難指示を出した。"
     "けが人は出ていない。気象台は翌日も雨が続くとみて、土砂災害に注意するよう呼びかけている。"),
    ("{town}の高校生、ロボット大会で優勝",
     "{town}の高校の生徒{n}人のチームが、全国ロボット大会で優勝した。",
     "{town}の高校の生徒{n}人のチームが、{month}月{day}日に開かれた全国ロボット大会で優勝した。"
     "チームは荷物を運ぶロボットを一年かけて作った。部長の生徒は「みんなで力を合わせた結果だ」と喜んだ。"),
    ("{town}に新駅が完成、{month}月から利用開始",
     "{town}に新しい駅が完成し、{month}月{day}日から利用が始まる。",
     "{town}に建設していた新しい駅が完成した。{month}月{day}日から利用が始まる。"
     "新駅は住宅地の近くにあり、一日に約{n}人の利用が見込まれている。駅前には駐輪場も整備された。"),
    ("{town}特産のみかんが豊作、出荷量{n}トン",
     "{town}特産のみかんが豊作で、出荷量が{n}トンに達する見込みだ。",
     "{town}特産のみかんが今年は豊作となり、出荷量が{n}トンに達する見込みだ。"
     "夏に晴れの日が多く、実が甘く育ったという。農協は{month}月から県外への出荷を増やす。生産者は「味に自信がある」と話した。"),
    ("{town}の動物園でレッサーパンダ誕生",
     "{town}の動物園でレッサーパンダの赤ちゃんが生まれ、{month}月から公開される。",
     "{town}の動物園で、レッサーパンダの赤ちゃんが生まれた。体重は約{n}グラムで、母親のそばで元気に育っている。"
     "動物園は{month}月から赤ちゃんを一般に公開する予定だ。名前は来園者の投票で決めるという。"),
    ("{town}で市民マラソン、{n}人が完走",
     "{town}で市民マラソン大会が開かれ、{n}人が完走した。",
     "{town}で{month}月{day}日、市民マラソン大会が開かれた。小学生から八十代までが参加し、{n}人が完走した。"
     "沿道では住民が旗を振って選手を応援した。大会は今年で十回目となる。"),
]
XLSUM_TOWNS = ["星見町", "若葉市", "風見町", "桜台市", "月ヶ丘町", "水森市", "七海町", "花園村", "石原町", "青柳市",
               "鈴鳴町", "雲井村"]
XLSUM_SPLITS = {"train": (0, 10), "validation": (10, 3), "test": (13, 20)}  # (first article, count)


def _xlsum(first: int, count: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "url", "title", "summary", "text"])
    for i in range(first, first + count):
        title, summary, text = XLSUM_TEMPLATES[i % len(XLSUM_TEMPLATES)]
        slots = {"town": XLSUM_TOWNS[(5 * i) % len(XLSUM_TOWNS)], "month": 1 + (7 * i) % 12, "day": 1 + (11 * i) % 28,
                 "n": 120 + (37 * i * i) % 900}
        writer.writerow([f"chowa-{i:04d}", f"https://example.invalid/news/{i:04d}", title.format(**slots),
                         summary.format(**slots), text.format(**slots)])
    return buffer.getvalue()


# --- XWinograd (jp): [candidate]s and the {pronoun}, the correct candidate (1 or 2), the English original ---

XWINOGRAD = [
    ("[ケン]は[タロウ]に宿題を手伝ってもらった。{彼}は数学が得意だからだ。", 2,
     "Ken got help from Taro with his homework because he is good at math."),
    ("[ケン]は[タロウ]に宿題を手伝ってもらった。{彼}は数学が苦手だからだ。", 1,
     "Ken got help from Taro with his homework because he is bad at math."),
    ("[ボール]が[窓]に当たって、{それ}は粉々に割れた。", 2,
     "The ball hit the window and it shattered."),
    ("[ボール]が[窓]に当たって、{それ}は庭まで跳ね返った。", 1,
     "The ball hit the window and it bounced back into the garden."),
    ("[母]は[娘]を起こした。{彼女}はまだぐっすり眠っていた。", 2,
     "The mother woke the daughter. She was still fast asleep."),
    ("[母]は[娘]を起こした。{彼女}はいつも早起きだった。", 1,
     "The mother woke the daughter. She always got up early."),
    ("[犬]が[猫]を追いかけた。{それ}は怖くなって木に登った。", 2,
     "The dog chased the cat. It got scared and climbed a tree."),
    ("[犬]が[猫]を追いかけた。{それ}は楽しそうにしっぽを振っていた。", 1,
     "The dog chased the cat. It was wagging its tail happily."),
    ("[アイスクリーム]を[ストーブ]の近くに置いた。すると{それ}はすぐに溶けた。", 1,
     "I put the ice cream near the stove. Then it melted at once."),
    ("[アイスクリーム]を[ストーブ]の近くに置いた。{それ}は赤く燃えていた。", 2,
     "I put the ice cream near the stove. It was burning red."),
    ("[先生]は[生徒]をほめた。{彼}がテストで満点を取ったからだ。", 2,
     "The teacher praised the student because he got full marks on the test."),
    ("[先生]は[生徒]をほめた。{彼}はいつも人の良いところを見つけるからだ。", 1,
     "The teacher praised the student because he always finds the good in people."),
    ("[りんご]を[かご]に入れすぎて、{それ}があふれてしまった。", 2,
     "I put too many apples in the basket and it overflowed."),
    ("[りんご]を[かご]に入れすぎて、{それ}が一つ転がり落ちた。", 1,
     "I put too many apples in the basket and one of them rolled out."),
    ("[ハナコ]は[ユキ]にお金を借りた。{彼女}は財布を忘れたからだ。", 1,
     "Hanako borrowed money from Yuki because she had forgotten her wallet."),
    ("[ハナコ]は[ユキ]にお金を借りた。{彼女}はお金をたくさん持っていたからだ。", 2,
     "Hanako borrowed money from Yuki because she had plenty of money."),
    ("[車]が[自転車]を追い越した。{それ}の方が速かったからだ。", 1,
     "The car overtook the bicycle because it was faster."),
    ("[車]が[自転車]を追い越した。{それ}の方が遅かったからだ。", 2,
     "The car overtook the bicycle because it was slower."),
    ("[医者]は[患者]に薬を出した。{彼}は高い熱があったからだ。", 2,
     "The doctor gave the patient medicine because he had a high fever."),
    ("[医者]は[患者]に薬を出した。{彼}はその病気にくわしかったからだ。", 1,
     "The doctor gave the patient medicine because he knew the illness well."),
]


def _xwinograd_row(i: int, marked: str, correct: int, english: str) -> str:
    """One yandex `dataset.tsv` row: tokens, the pronoun's [start, end) token span, both candidates' spans."""
    tokens, spans, pronoun = [], [], None
    for piece in marked.replace("[", "|[").replace("]", "]|").replace("{", "|{").replace("}", "}|").split("|"):
        if not piece:
            continue
        if piece[0] in "[{":
            word = piece[1:-1]
            entry = [word, [len(tokens), len(tokens) + 1], [word]]
            if piece[0] == "{":
                pronoun = entry
            else:
                spans.append(entry)
            piece = word
        tokens.append(piece)
    candidates = [entry + [k + 1 == correct] for k, entry in enumerate(spans)]
    columns = ["jp", "train" if i % 4 < 2 else "test", english, "".join(tokens)]
    columns += [json.dumps(v, ensure_ascii=False) for v in (tokens, pronoun, candidates)]
    return "\t".join(columns) + "\n"


# --- MGSM: word-problem templates; the 8 exemplars and 20 test problems differ only in their numbers --------

MGSM_TEMPLATES = [  # (Japanese question, Japanese steps, English question, English steps, answer)
    ("ハルはりんごを{a}個持っています。お店で{b}個買いました。りんごは全部で何個ですか？", "{a}+{b}={r}なので、",
     "Haru has {a} apples. She buys {b} more at the shop. How many apples does she have now?", "{a} + {b} = {r}.",
     lambda a, b, c: a + b),
    ("クッキーが{a}枚あります。{b}枚食べました。残りは何枚ですか？", "{a}-{b}={r}なので、",
     "There are {a} cookies. {b} are eaten. How many are left?", "{a} - {b} = {r}.", lambda a, b, c: a - b),
    ("1箱に鉛筆が{a}本入っています。{b}箱では鉛筆は何本ですか？", "{a}×{b}={r}なので、",
     "A box holds {a} pencils. How many pencils are in {b} boxes?", "{a} x {b} = {r}.", lambda a, b, c: a * b),
    ("{a}個のあめを{b}人で同じ数ずつ分けます。1人何個もらえますか？", "{a}÷{b}={r}なので、",
     "{a} candies are shared equally among {b} children. How many does each get?", "{a} / {b} = {r}.",
     lambda a, b, c: a // b),
    ("ノートは1冊{a}円です。{b}冊買って1000円払うと、おつりは何円ですか？",
     "ノートは{a}×{b}={p}円なので、1000-{p}={r}で、",
     "A notebook costs {a} yen. Sam buys {b} and pays 1000 yen. How much change does he get?",
     "{b} notebooks cost {a} x {b} = {p} yen, and 1000 - {p} = {r}.", lambda a, b, c: 1000 - a * b),
    ("バスに{a}人乗っていました。次の停留所で{b}人降りて、{c}人乗りました。今バスには何人乗っていますか？",
     "{a}-{b}={p}、{p}+{c}={r}なので、",
     "A bus has {a} riders. At a stop {b} get off and {c} get on. How many riders are there now?",
     "{a} - {b} = {p}, and {p} + {c} = {r}.", lambda a, b, c: a - b + c),
    ("教室に机が{a}列あり、1列に{b}台ずつ並んでいます。さらに{c}台運び込みました。机は全部で何台ですか？",
     "{a}×{b}={p}、{p}+{c}={r}なので、",
     "A classroom has {a} rows of {b} desks. {c} more desks are carried in. How many desks are there?",
     "{a} x {b} = {p}, and {p} + {c} = {r}.", lambda a, b, c: a * b + c),
    ("池にカモが{a}羽いました。{b}羽飛んできて、そのあと{c}羽飛んでいきました。池には何羽いますか？",
     "{a}+{b}={p}、{p}-{c}={r}なので、",
     "There are {a} ducks on a pond. {b} fly in, then {c} fly away. How many ducks are on the pond?",
     "{a} + {b} = {p}, and {p} - {c} = {r}.", lambda a, b, c: a + b - c),
]
MGSM_EXEMPLAR_NUMBERS = [(5, 3, 0), (12, 4, 0), (6, 3, 0), (12, 3, 0), (120, 5, 0), (15, 6, 4), (4, 5, 3), (7, 5, 2)]
MGSM_TEST_NUMBERS = [(8, 6, 0), (20, 7, 0), (9, 4, 0), (24, 6, 0), (150, 4, 0), (30, 12, 9), (6, 7, 5), (11, 4, 6),
                     (27, 15, 0), (50, 18, 0), (12, 5, 0), (35, 7, 0), (80, 9, 0), (22, 8, 13), (3, 9, 2),
                     (16, 9, 10), (45, 38, 0), (33, 14, 0), (25, 3, 0), (48, 4, 0)]
_PARTIAL = {4: lambda a, b, c: a * b, 5: lambda a, b, c: a - b, 6: lambda a, b, c: a * b, 7: lambda a, b, c: a + b}


def _mgsm_problem(template: int, numbers: tuple[int, int, int]) -> dict:
    ja_q, ja_steps, en_q, en_steps, solve = MGSM_TEMPLATES[template]
    a, b, c = numbers
    slots = {"a": a, "b": b, "c": c, "r": solve(a, b, c), "p": _PARTIAL.get(template, solve)(a, b, c)}
    return {"ja_q": ja_q.format(**slots), "ja_a": ja_steps.format(**slots) + f"答えは{slots['r']}です。",
            "en_q": en_q.format(**slots), "en_a": en_steps.format(**slots) + f" The answer is {slots['r']}.",
            "answer": slots["r"]}


def _mgsm() -> tuple[str, str]:
    test = [_mgsm_problem(i % len(MGSM_TEMPLATES), numbers) for i, numbers in enumerate(MGSM_TEST_NUMBERS)]
    tsv = "".join(f"{p['ja_q']}\t{p['answer']}\n" for p in test)
    shots = [_mgsm_problem(i, numbers) for i, numbers in enumerate(MGSM_EXEMPLAR_NUMBERS)]
    lines = ['"""Few-shot exemplars for MGSM, in the layout of google-research/url-nlp `mgsm/exemplars.py`.', "",
             "Invented problems for chowa's built-in data; chowa reads this file with `ast`, never imports it.",
             '"""', "", f"EXEMPLAR_NUMBER_ANSWERS = {[p['answer'] for p in shots]}", "", "MGSM_EXEMPLARS = {"]
    for lang, q_tag, a_tag in (("en", "Question: ", "Step-by-Step Answer: "), ("ja", "問題：", "ステップごとの答え：")):
        lines.append(f"    {lang!r}: {{")
        for k, p in enumerate(shots, start=1):
            lines += [f"        '{k}': {{", f"            'q': {q_tag + p[lang + '_q']!r},",
                      f"            'a': {a_tag + p[lang + '_a']!r},", "        },"]
        lines.append("    },")
    return tsv, "\n".join(lines + ["}"]) + "\n"


def build_jglue() -> dict[str, str]:
    """The data root's files, relative to the builtin folder, and their exact text."""
    positive, negative = MARC_POSITIVE.strip().splitlines(), MARC_NEGATIVE.strip().splitlines()
    jaqket_train, jaqket_dev = _jaqket()
    mgsm_test, exemplars = _mgsm()
    winograd = [_xwinograd_row(i, *row) for i, row in enumerate(XWINOGRAD)]
    files = {
        f"{JGLUE}/jcommonsenseqa-v1.1/train-v1.1.json": _jcqa(JCQA_TRAIN, 0),
        f"{JGLUE}/jcommonsenseqa-v1.1/valid-v1.1.json": _jcqa(JCQA_VALID, 9000),
        f"{JGLUE}/jnli-v1.1/train-v1.1.json": _jnli(JNLI_TRAIN, 0),
        f"{JGLUE}/jnli-v1.1/valid-v1.1.json": _jnli(JNLI_VALID, 9000),
        f"{JGLUE}/marc_ja-v1.1/train-v1.1.json": _marc(positive[:12], negative[:12], "RCHOWATR"),
        f"{JGLUE}/marc_ja-v1.1/valid-v1.1.json": _marc(positive[12:], negative[12:], "RCHOWAVA"),
        f"{JGLUE}/jsquad-v1.1/train-v1.1.json": _jsquad(JSQUAD_TRAIN, 1),
        f"{JGLUE}/jsquad-v1.1/valid-v1.1.json": _jsquad(JSQUAD_VALID, 101),
        "jglue/jaqket_v2/train_jaqket_59.350.json": jaqket_train,
        "jglue/jaqket_v2/dev_jaqket_59.350.json": jaqket_dev,
        "jglue/xwinograd/dataset.tsv": "".join(winograd),
        "jglue/mgsm/mgsm_ja.tsv": mgsm_test,
        "jglue/mgsm/exemplars.py": exemplars,
    }
    for split, (first, count) in XLSUM_SPLITS.items():
        files[f"jglue/xlsum_ja/{split}.csv"] = _xlsum(first, count)
    return files
