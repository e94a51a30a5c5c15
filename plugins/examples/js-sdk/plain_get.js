// The plain GET of the benchmarks as a k6-shaped script (plugins/sdk-js): every iteration
// fetches `/` and never reads the body — k6's `discardResponseBodies` — with no sleep, the
// same work as bench/peers/plain_get.k6.js under k6 (bench/home_peers.sh).
import http from "./perfhost.js";

export const options = { name: "PlainGet", discardResponseBodies: true };

export default function () {
  http.get("/");
}
