"""Few-shot exemplars for MGSM, in the layout of google-research/url-nlp `mgsm/exemplars.py`.

Invented problems for chowa's built-in data; chowa reads this file with `ast`, never imports it.
"""

EXEMPLAR_NUMBER_ANSWERS = [8, 8, 18, 4, 400, 13, 23, 10]

MGSM_EXEMPLARS = {
    'en': {
        '1': {
            'q': 'Question: Haru has 5 apples. She buys 3 more at the shop. How many apples does she have now?',
            'a': 'Step-by-Step Answer: 5 + 3 = 8. The answer is 8.',
        },
        '2': {
            'q': 'Question: There are 12 cookies. 4 are eaten. How many are left?',
            'a': 'Step-by-Step Answer: 12 - 4 = 8. The answer is 8.',
        },
        '3': {
            'q': 'Question: A box holds 6 pencils. How many pencils are in 3 boxes?',
            'a': 'Step-by-Step Answer: 6 x 3 = 18. The answer is 18.',
        },
        '4': {
            'q': 'Question: 12 candies are shared equally among 3 children. How many does each get?',
            'a': 'Step-by-Step Answer: 12 / 3 = 4. The answer is 4.',
        },
        '5': {
            'q': 'Question: A notebook costs 120 yen. Sam buys 5 and pays 1000 yen. How much change does he get?',
            'a': 'Step-by-Step Answer: 5 notebooks cost 120 x 5 = 600 yen, and 1000 - 600 = 400. The answer is 400.',
        },
        '6': {
            'q': 'Question: A bus has 15 riders. At a stop 6 get off and 4 get on. How many riders are there now?',
            'a': 'Step-by-Step Answer: 15 - 6 = 9, and 9 + 4 = 13. The answer is 13.',
        },
        '7': {
            'q': 'Question: A classroom has 4 rows of 5 desks. 3 more desks are carried in. How many desks are there?',
            'a': 'Step-by-Step Answer: 4 x 5 = 20, and 20 + 3 = 23. The answer is 23.',
        },
        '8': {
            'q': 'Question: There are 7 ducks on a pond. 5 fly in, then 2 fly away. How many ducks are on the pond?',
            'a': 'Step-by-Step Answer: 7 + 5 = 12, and 12 - 2 = 10. The answer is 10.',
        },
    },
    'ja': {
        '1': {
            'q': '問題：ハルはりんごを5個持っています。お店で3個買いました。りんごは全部で何個ですか？',
            'a': 'ステップごとの答え：5+3=8なので、答えは8です。',
        },
        '2': {
            'q': '問題：クッキーが12枚あります。4枚食べました。残りは何枚ですか？',
            'a': 'ステップごとの答え：12-4=8なので、答えは8です。',
        },
        '3': {
            'q': '問題：1箱に鉛筆が6本入っています。3箱では鉛筆は何本ですか？',
            'a': 'ステップごとの答え：6×3=18なので、答えは18です。',
        },
        '4': {
            'q': '問題：12個のあめを3人で同じ数ずつ分けます。1人何個もらえますか？',
            'a': 'ステップごとの答え：12÷3=4なので、答えは4です。',
        },
        '5': {
            'q': '問題：ノートは1冊120円です。5冊買って1000円払うと、おつりは何円ですか？',
            'a': 'ステップごとの答え：ノートは120×5=600円なので、1000-600=400で、答えは400です。',
        },
        '6': {
            'q': '問題：バスに15人乗っていました。次の停留所で6人降りて、4人乗りました。今バスには何人乗っていますか？',
            'a': 'ステップごとの答え：15-6=9、9+4=13なので、答えは13です。',
        },
        '7': {
            'q': '問題：教室に机が4列あり、1列に5台ずつ並んでいます。さらに3台運び込みました。机は全部で何台ですか？',
            'a': 'ステップごとの答え：4×5=20、20+3=23なので、答えは23です。',
        },
        '8': {
            'q': '問題：池にカモが7羽いました。5羽飛んできて、そのあと2羽飛んでいきました。池には何羽いますか？',
            'a': 'ステップごとの答え：7+5=12、12-2=10なので、答えは10です。',
        },
    },
}
