// The plain GET of bench/home_peers.sh under k6: every iteration fetches `/` with no sleep and
// discards the body (k6's discardResponseBodies), as perfhost's plain_get plugins do.
//   k6 run -e URL=http://127.0.0.1:8080 -e VUS=100 -e DURATION=10s bench/peers/plain_get.k6.js
import http from 'k6/http';

const URL = (__ENV.URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

export const options = {
  vus: Number(__ENV.VUS || 100),
  duration: __ENV.DURATION || '10s',
  discardResponseBodies: true,
};

export default function () {
  http.get(`${URL}/`);
}
