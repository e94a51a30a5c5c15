// sleep_between.js in the SDK's async form: the first user's first iteration sends two
// requests a second apart while every other user — sharing its instance — keeps requesting
// every 20 ms. The first sleep is awaited, the others are k6's plain `sleep()`, which the
// user's next request (or the iteration's end) waits out.
import http, { sleep } from "./perfhost.js";

export const options = { name: "Sleeper" };

export default async function () {
  if (__VU !== 1) {
    await http.asyncRequest("GET", "/health?other");
    sleep(0.02);
  } else if (__ITER === 0) {
    await http.asyncRequest("GET", "/health?first");
    await sleep(1);
    await http.asyncRequest("GET", "/health?second");
  } else {
    sleep(0.02);
  }
}
