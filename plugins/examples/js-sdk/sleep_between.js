// k6's sleep() where it is called (plugins/sdk-js): the first user's first iteration sends
// two requests a second apart; every other user keeps requesting every 20 ms meanwhile.
import http, { sleep } from "./perfhost.js";

export const options = { name: "Sleeper" };

export default function () {
  if (__VU !== 1) {
    http.get("/health?other");
    sleep(0.02);
  } else if (__ITER === 0) {
    http.get("/health?first");
    sleep(1);
    http.get("/health?second");
  } else {
    sleep(0.02);
  }
}
