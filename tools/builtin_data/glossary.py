"""chowa's own English–Japanese glossary: the words the corpus and the translation tasks share.

Each entry is `english|japanese|hiragana reading|category`; a noun that takes no article ("rice", "water") is
marked with a trailing `*` on the English. Colours carry the Japanese predicate form after a `/` (赤/赤い), so
"The car is red." becomes "その車は赤いです。" rather than a wrong "赤です".

Run as (from Python):
    from tools.builtin_data.glossary import GLOSSARY
    [w.en for w in GLOSSARY if w.category == "animal"]
"""

from __future__ import annotations

from dataclasses import dataclass

_ENTRIES = """
dog|犬|いぬ|animal
cat|猫|ねこ|animal
bird|鳥|とり|animal
fish|魚|さかな|animal
horse|馬|うま|animal
cow|牛|うし|animal
pig|豚|ぶた|animal
rabbit|うさぎ|うさぎ|animal
monkey|猿|さる|animal
bear|熊|くま|animal
fox|きつね|きつね|animal
mouse|ねずみ|ねずみ|animal
elephant|象|ぞう|animal
lion|ライオン|らいおん|animal
tiger|虎|とら|animal
frog|蛙|かえる|animal
turtle|亀|かめ|animal
duck|アヒル|あひる|animal
sheep|羊|ひつじ|animal
goat|ヤギ|やぎ|animal
deer|鹿|しか|animal
owl|フクロウ|ふくろう|animal
snake|蛇|へび|animal
butterfly|蝶|ちょう|animal
whale|鯨|くじら|animal
dolphin|イルカ|いるか|animal
penguin|ペンギン|ぺんぎん|animal
chicken|鶏|にわとり|animal
rice*|ご飯|ごはん|food
bread*|パン|ぱん|food
egg|卵|たまご|food
milk*|牛乳|ぎゅうにゅう|food
water*|水|みず|food
tea*|お茶|おちゃ|food
coffee*|コーヒー|こーひー|food
apple|りんご|りんご|food
banana|バナナ|ばなな|food
mandarin|みかん|みかん|food
strawberry|いちご|いちご|food
grape|ぶどう|ぶどう|food
peach|桃|もも|food
watermelon|すいか|すいか|food
potato|じゃがいも|じゃがいも|food
carrot|にんじん|にんじん|food
onion|玉ねぎ|たまねぎ|food
tomato|トマト|とまと|food
meat*|肉|にく|food
soup*|スープ|すーぷ|food
noodles*|麺|めん|food
sushi*|寿司|すし|food
tofu*|豆腐|とうふ|food
miso soup*|味噌汁|みそしる|food
salt*|塩|しお|food
sugar*|砂糖|さとう|food
cake|ケーキ|けーき|food
rice ball|おにぎり|おにぎり|food
cheese*|チーズ|ちーず|food
lunch box|弁当|べんとう|food
salad*|サラダ|さらだ|food
red|赤/赤い|あか|colour
blue|青/青い|あお|colour
white|白/白い|しろ|colour
black|黒/黒い|くろ|colour
yellow|黄色/黄色い|きいろ|colour
green|緑/緑色|みどり|colour
brown|茶色/茶色い|ちゃいろ|colour
purple|紫/紫色|むらさき|colour
pink|ピンク/ピンク|ぴんく|colour
grey|灰色/灰色|はいいろ|colour
orange|オレンジ色/オレンジ色|おれんじいろ|colour
mother|母|はは|family
father|父|ちち|family
older brother|兄|あに|family
older sister|姉|あね|family
younger brother|弟|おとうと|family
younger sister|妹|いもうと|family
grandmother|祖母|そぼ|family
grandfather|祖父|そふ|family
child|子ども|こども|family
family|家族|かぞく|family
friend|友達|ともだち|family
teacher|先生|せんせい|family
student|学生|がくせい|family
baby|赤ちゃん|あかちゃん|family
husband|夫|おっと|family
wife|妻|つま|family
school|学校|がっこう|place
station|駅|えき|place
hospital|病院|びょういん|place
library|図書館|としょかん|place
park|公園|こうえん|place
house|家|いえ|place
shop|店|みせ|place
bank|銀行|ぎんこう|place
post office|郵便局|ゆうびんきょく|place
restaurant|レストラン|れすとらん|place
town|町|まち|place
city|都市|とし|place
river|川|かわ|place
mountain|山|やま|place
sea|海|うみ|place
forest|森|もり|place
island|島|しま|place
beach|浜辺|はまべ|place
temple|お寺|おてら|place
shrine|神社|じんじゃ|place
airport|空港|くうこう|place
kitchen|台所|だいどころ|place
garden|庭|にわ|place
room|部屋|へや|place
country|国|くに|place
road|道|みち|place
bridge|橋|はし|place
sun|太陽|たいよう|nature
moon|月|つき|nature
star|星|ほし|nature
rain*|雨|あめ|nature
snow*|雪|ゆき|nature
wind*|風|かぜ|nature
cloud|雲|くも|nature
tree|木|き|nature
flower|花|はな|nature
leaf|葉|は|nature
stone|石|いし|nature
fire*|火|ひ|nature
sky*|空|そら|nature
spring*|春|はる|time
summer*|夏|なつ|time
autumn*|秋|あき|time
winter*|冬|ふゆ|time
morning|朝|あさ|time
night|夜|よる|time
today*|今日|きょう|time
tomorrow*|明日|あした|time
yesterday*|昨日|きのう|time
book|本|ほん|object
pen|ペン|ぺん|object
desk|机|つくえ|object
chair|椅子|いす|object
car|車|くるま|object
train|電車|でんしゃ|object
bicycle|自転車|じてんしゃ|object
bus|バス|ばす|object
phone|電話|でんわ|object
clock|時計|とけい|object
umbrella|傘|かさ|object
bag|かばん|かばん|object
hat|帽子|ぼうし|object
door|ドア|どあ|object
window|窓|まど|object
cup|コップ|こっぷ|object
box|箱|はこ|object
letter|手紙|てがみ|object
key|鍵|かぎ|object
newspaper|新聞|しんぶん|object
stamp|切手|きって|object
head|頭|あたま|body
hand|手|て|body
eye|目|め|body
ear|耳|みみ|body
mouth|口|くち|body
foot|足|あし|body
eat|食べる|たべる|verb
drink|飲む|のむ|verb
go|行く|いく|verb
come|来る|くる|verb
see|見る|みる|verb
read|読む|よむ|verb
write|書く|かく|verb
sleep|寝る|ねる|verb
walk|歩く|あるく|verb
run|走る|はしる|verb
swim|泳ぐ|およぐ|verb
buy|買う|かう|verb
speak|話す|はなす|verb
listen|聞く|きく|verb
wait|待つ|まつ|verb
play|遊ぶ|あそぶ|verb
study|勉強する|べんきょうする|verb
cook|料理する|りょうりする|verb
open|開ける|あける|verb
close|閉める|しめる|verb
sing|歌う|うたう|verb
think|考える|かんがえる|verb
learn|習う|ならう|verb
make|作る|つくる|verb
big|大きい|おおきい|adjective
small|小さい|ちいさい|adjective
hot|暑い|あつい|adjective
cold|寒い|さむい|adjective
new|新しい|あたらしい|adjective
old|古い|ふるい|adjective
fast|速い|はやい|adjective
slow|遅い|おそい|adjective
tall|高い|たかい|adjective
delicious|おいしい|おいしい|adjective
fun|楽しい|たのしい|adjective
beautiful|美しい|うつくしい|adjective
quiet|静か|しずか|adjective
kind|優しい|やさしい|adjective
long|長い|ながい|adjective
short|短い|みじかい|adjective
"""


@dataclass(frozen=True)
class Word:
    en: str
    ja: str
    reading: str
    category: str
    countable: bool
    ja_predicate: str  # how the word ends a "X は ___ です" sentence; differs from `ja` only for colours

    @property
    def en_with_article(self) -> str:
        """'a dog', 'an apple', 'rice'."""
        if not self.countable:
            return self.en
        return ("an " if self.en[0] in "aeiou" else "a ") + self.en


def _parse(line: str) -> Word:
    en, ja, reading, category = line.split("|")
    ja, _, predicate = ja.partition("/")
    return Word(en.rstrip("*"), ja, reading, category, not en.endswith("*"), predicate or ja)


GLOSSARY: tuple[Word, ...] = tuple(_parse(line) for line in _ENTRIES.split("\n") if line)
CATEGORIES_JA = {
    "animal": "動物", "food": "食べ物", "colour": "色", "family": "家族", "place": "場所", "nature": "自然",
    "time": "時", "object": "物", "body": "体", "verb": "動詞", "adjective": "形容詞",
}
# Things one can point at and ask "where is it?": the nouns the translation sentences are built from.
SENTENCE_NOUNS: tuple[Word, ...] = tuple(
    w for w in GLOSSARY if w.countable and w.category in ("animal", "object", "place", "food")
)
COLOURS: tuple[Word, ...] = tuple(w for w in GLOSSARY if w.category == "colour")
