// The plain GET of the benchmarks in the SDK's async form (plugins/sdk-js): every iteration
// fetches `/` with k6's `http.asyncRequest` and never reads the body; up to 500 users share one
// instance. The same work as plain_get.js (one instance per user) and as
// bench/peers/plain_get.k6.js under k6 (bench/home_peers.sh).
import http from "./perfhost.js";

export const options = { name: "PlainGet", discardResponseBodies: true };

export default async function () {
  await http.asyncRequest("GET", "/");
}
