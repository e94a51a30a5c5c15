// The Auditor suite's request data (bench/peers/locustfile.py's SAMPLE_ANSWERS, SAMPLE_SOURCES
// and generate_verification_request) for the JS SDK's AuditorUser examples, sync and async
// form alike; build.sh puts it beside the script.

const SAMPLE_ANSWERS = [
  'Nach § 823 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt.',
  'Die Verjährungsfrist beträgt nach § 195 BGB drei Jahre.',
  'Nach Art. 1 GG ist die Würde des Menschen unantastbar.',
  'Der Kaufvertrag nach § 433 BGB verpflichtet den Verkäufer zur Übergabe der Sache und zur Verschaffung des Eigentums.',
  'Nach § 312 BGB kann bei Verträgen im elektronischen Geschäftsverkehr ein Widerrufsrecht bestehen.',
];

const SAMPLE_SOURCES = [
  {
    text: 'Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.',
    source_id: 'bgb_823_abs1',
    score: 0.95,
    metadata: { law: 'BGB', section: '823', paragraph: '1' },
  },
  {
    text: 'Die regelmäßige Verjährungsfrist beträgt drei Jahre.',
    source_id: 'bgb_195',
    score: 0.92,
    metadata: { law: 'BGB', section: '195' },
  },
  {
    text: 'Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.',
    source_id: 'gg_art1_abs1',
    score: 0.98,
    metadata: { law: 'GG', article: '1', paragraph: '1' },
  },
  {
    text: 'Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen.',
    source_id: 'bgb_433_abs1',
    score: 0.94,
    metadata: { law: 'BGB', section: '433', paragraph: '1' },
  },
];

// Python's random.sample: k distinct items in random order (a partial Fisher–Yates shuffle).
function sample(items, k) {
  const pool = items.slice();
  const n = Math.min(k, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, n);
}

// generate_verification_request(num_sources, threshold, strict_mode)
export function verificationRequest(numSources = 3, threshold = 0.75, strictMode = false) {
  return JSON.stringify({
    answer: SAMPLE_ANSWERS[Math.floor(Math.random() * SAMPLE_ANSWERS.length)],
    sources: sample(SAMPLE_SOURCES, numSources),
    threshold: threshold,
    strict_mode: strictMode,
    config: { language: 'de', domain: 'legal', enable_citations: true, enable_retry: true },
  });
}
