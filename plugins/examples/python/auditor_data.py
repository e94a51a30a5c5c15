"""The Auditor sample data and `/verify` bodies of `plugins/auditor_data`, in Python: the same
answers, sources and body algorithm, so that for one seed a Python user sends the bytes the Rust
one sends. Shared by the raw-bindings example (`burst_user.py`) and the SDK examples
(`../python-sdk`)."""

# (text, indices into SOURCES that back it), as in auditor_data::ANSWERS.
ANSWERS = [
    ("Nach § 823 Abs. 1 BGB ist zum Schadensersatz verpflichtet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt. Der Geschädigte kann den Ersatz des daraus entstehenden Schadens verlangen.", [0]),
    ("Wer gegen ein Schutzgesetz verstößt, haftet gemäß § 823 Abs. 2 BGB ebenfalls auf Schadensersatz. Ist ein Verstoß auch ohne Verschulden möglich, tritt die Ersatzpflicht nur bei Verschulden ein.", [1, 0]),
    ("Die regelmäßige Verjährungsfrist beträgt gemäß § 195 BGB drei Jahre. Sie beginnt nach § 199 Abs. 1 BGB mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger davon Kenntnis erlangt hat.", [2, 3]),
    ("Durch den Kaufvertrag wird der Verkäufer nach § 433 Abs. 1 BGB verpflichtet, dem Käufer die Sache zu übergeben und ihm das Eigentum daran zu verschaffen. Der Käufer muss gemäß § 433 Abs. 2 BGB den vereinbarten Kaufpreis zahlen und die Sache abnehmen.", [4, 5]),
    ("Bei Fernabsatzverträgen steht dem Verbraucher nach § 312g Abs. 1 BGB ein Widerrufsrecht zu. Die Widerrufsfrist beträgt gemäß § 355 Abs. 2 BGB 14 Tage. Die Vorschriften gelten nach § 312 Abs. 1 BGB für Verbraucherverträge, bei denen der Verbraucher einen Preis zahlt.", [7, 8, 6]),
    ("Die Würde des Menschen ist unantastbar (Art. 1 Abs. 1 GG). Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.", [9]),
    ("Die Verjährungsfrist für Schadensersatzansprüche aus § 823 Abs. 1 BGB beträgt nach § 195 BGB drei Jahre.", [0, 2]),
]

# (source_id, score as written in the JSON, text), as in auditor_data::SOURCES.
SOURCES = [
    ("bgb_823", "0.92", "§ 823 Abs. 1 BGB: Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet."),
    ("bgb_823_2", "0.81", "§ 823 Abs. 2 BGB: Die gleiche Verpflichtung trifft denjenigen, welcher gegen ein den Schutz eines anderen bezweckendes Gesetz verstößt. Ist nach dem Inhalt des Gesetzes ein Verstoß gegen dieses auch ohne Verschulden möglich, so tritt die Ersatzpflicht nur im Falle des Verschuldens ein."),
    ("bgb_195", "0.9", "§ 195 BGB: Die regelmäßige Verjährungsfrist beträgt drei Jahre."),
    ("bgb_199", "0.78", "§ 199 Abs. 1 BGB: Die regelmäßige Verjährungsfrist beginnt mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger von den den Anspruch begründenden Umständen und der Person des Schuldners Kenntnis erlangt oder ohne grobe Fahrlässigkeit erlangen müsste."),
    ("bgb_433", "0.88", "§ 433 Abs. 1 BGB: Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen. Der Verkäufer hat dem Käufer die Sache frei von Sach- und Rechtsmängeln zu verschaffen."),
    ("bgb_433_2", "0.85", "§ 433 Abs. 2 BGB: Der Käufer ist verpflichtet, dem Verkäufer den vereinbarten Kaufpreis zu zahlen und die gekaufte Sache abzunehmen."),
    ("bgb_312", "0.74", "§ 312 Abs. 1 BGB: Die Vorschriften der Kapitel 1 und 2 dieses Untertitels sind auf Verbraucherverträge anzuwenden, bei denen sich der Verbraucher zu der Zahlung eines Preises verpflichtet."),
    ("bgb_312g", "0.8", "§ 312g Abs. 1 BGB: Dem Verbraucher steht bei außerhalb von Geschäftsräumen geschlossenen Verträgen und bei Fernabsatzverträgen ein Widerrufsrecht gemäß § 355 zu."),
    ("bgb_355", "0.76", "§ 355 Abs. 2 BGB: Die Widerrufsfrist beträgt 14 Tage. Sie beginnt mit Vertragsschluss, soweit nichts anderes bestimmt ist."),
    ("gg_1", "0.95", "Art. 1 Abs. 1 GG: Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt."),
]

# The JSON fragments, encoded once (the texts hold no `"`, `\` or control characters).
ANSWER_JSON = [('"' + text + '"').encode() for text, _ in ANSWERS]
SOURCE_JSON = [
    ('{"text":"%s","source_id":"%s","score":%s}' % (text, sid, score)).encode()
    for sid, score, text in SOURCES
]
STANDARD = b'"threshold":0.75,"strict_mode":false'
STRICT = b'"threshold":0.85,"strict_mode":true'

def pick(random_u64, low, high):
    """A uniform index in [low, high) from 64 random bits (the Rust SDK's `random_range`)."""
    return low + ((random_u64() * (high - low)) >> 64)


def verify_body(random_u64, sources, options):
    """`{"answer":…,"sources":[…],…}`: a random answer, `sources` sources (its backing sources
    first, then distinct random others) and `options` — `auditor_data::verify_body`."""
    answer = pick(random_u64, 0, len(ANSWERS))
    count = max(1, min(sources, len(SOURCES)))
    order = list(range(len(SOURCES)))
    filled = 0
    for b in ANSWERS[answer][1]:
        if b in order[filled:]:
            pos = order.index(b, filled)
            order[filled], order[pos] = order[pos], order[filled]
            filled += 1
    for i in range(filled, count):
        j = pick(random_u64, i, len(SOURCES))
        order[i], order[j] = order[j], order[i]
    return b"".join(
        [
            b'{"answer":',
            ANSWER_JSON[answer],
            b',"sources":[',
            b",".join(SOURCE_JSON[i] for i in order[:count]),
            b"],",
            options,
            b"}",
        ]
    )
