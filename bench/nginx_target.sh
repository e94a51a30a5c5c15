# Sourced by bench/compare.sh, bench/generators.sh and bench/request_cost.sh: the nginx target of
# the benchmarks. Needs OUT (a folder), SERVER_CPU, NOFILE and a `die` function; sets NGINX_PID,
# NGINX_PORT, NGINX_WORKER and URL; `stop_nginx` (the EXIT trap) stops it. PROTO picks what
# nginx speaks: http1 (the default), h2 (HTTP/2 over TLS by ALPN, a self-signed certificate
# made with openssl; URL is https://) or h2c (HTTP/2 with prior knowledge only, no TLS). Also the demo-server
# target (`start_demo_server`, needs BIN).
# shellcheck shell=bash

NGINX_PID=""
stop_nginx() {
  if [ -n "$NGINX_PID" ]; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT — until something accepts on 127.0.0.1:PORT (5 s at most)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# start_demo_server [ARG…] — `$BIN demo-server --bind 127.0.0.1:0 ARG…` pinned to SERVER_CPU;
# sets DEMO_PID and DEMO_URL (the address it printed). The caller's EXIT trap kills DEMO_PID.
start_demo_server() {
  taskset -c "$SERVER_CPU" "$BIN" demo-server --bind 127.0.0.1:0 "$@" >"$OUT/demo.out" 2>&1 &
  DEMO_PID=$!
  DEMO_URL=""
  for _ in $(seq 100); do
    DEMO_URL=$(sed -n 's/^perfhost demo-server listening on //p' "$OUT/demo.out")
    [ -n "$DEMO_URL" ] && return 0
    sleep 0.05
  done
  cat "$OUT/demo.out" >&2
  die "demo-server did not start"
}

start_nginx() {
  local dir="$OUT/nginx"
  mkdir -p "$dir/www"
  chmod 755 "$dir" "$dir/www"
  printf 'perfhost generator benchmark: a small static body served by nginx from a file, about 100 bytes.\n' >"$dir/www/index.html"
  chmod 644 "$dir/www/index.html"
  NGINX_PORT=$(free_port)
  local listen="listen 127.0.0.1:$NGINX_PORT;" scheme=http
  case ${PROTO:-http1} in
    http1) ;;
    h2)
      command -v openssl >/dev/null || die "openssl not found — install it with: apt-get install -y openssl"
      openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
      listen="listen 127.0.0.1:$NGINX_PORT ssl http2; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;"
      scheme=https
      ;;
    h2c) listen="listen 127.0.0.1:$NGINX_PORT http2;" ;;
    *) die "PROTO is http1, h2 or h2c (got '$PROTO')" ;;
  esac
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type text/plain;
    client_body_temp_path $dir/tmp_body;
    proxy_temp_path $dir/tmp_proxy;
    fastcgi_temp_path $dir/tmp_fastcgi;
    uwsgi_temp_path $dir/tmp_uwsgi;
    scgi_temp_path $dir/tmp_scgi;
    server {
        $listen
        root $dir/www;
        index index.html;
    }
}
EOF
  taskset -c "$SERVER_CPU" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_port "$NGINX_PORT" || { cat "$dir/stdout.log" "$dir/error.log" >&2; die "nginx did not start"; }
  NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
  [ -n "$NGINX_WORKER" ] || die "nginx started without a worker process"
  URL="$scheme://127.0.0.1:$NGINX_PORT"
  echo "# target: taskset -c $SERVER_CPU nginx -c $dir/nginx.conf  ($URL/, ${PROTO:-http1}, $(wc -c <"$dir/www/index.html") bytes)"
}
