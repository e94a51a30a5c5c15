-- wrk script: POST /verify with a realistic German legal body (two-sentence answer with
-- citations, three sources with scores and metadata, plus the extra fields the old Locust
-- suite sent). Used by bench/demo_server.sh.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[
{"answer": "Nach § 823 Abs. 1 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt. Die regelmäßige Verjährungsfrist beträgt nach § 195 BGB drei Jahre.",
 "sources": [
  {"text": "Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.", "source_id": "bgb_823_abs1", "score": 0.95, "metadata": {"law": "BGB", "section": "823", "paragraph": "1"}},
  {"text": "Die regelmäßige Verjährungsfrist beträgt drei Jahre.", "source_id": "bgb_195", "score": 0.92, "metadata": {"law": "BGB", "section": "195"}},
  {"text": "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.", "source_id": "gg_art1_abs1", "score": 0.98, "metadata": {"law": "GG", "article": "1", "paragraph": "1"}}
 ],
 "threshold": 0.75,
 "strict_mode": false,
 "config": {"language": "de", "domain": "legal", "enable_citations": true, "enable_retry": true},
 "metadata": {"query_id": "bench", "user_id": "wrk"}}
]]

-- One machine-readable line after wrk's own report.
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
