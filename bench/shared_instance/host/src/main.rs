//! Prototype of perfhost's planned shared-instance mode: every virtual user lives in ONE
//! component instance (one Store) and runs concurrently through component-model async, instead
//! of one Store, instance and fiber stack per user. Measures what that mode would cost in host
//! CPU per request and memory per user, against the same target as `perfhost run`.
//!
//! usage: shared-instance-host PLUGIN.wasm HOST:PORT PATH USERS SECONDS WAIT_MS
//! WAIT_MS 0 = no wait; otherwise each user waits a fixed WAIT_MS/2 + (id·7919 mod WAIT_MS) ms
//! between requests (WAIT_MS 2000 ⇒ 1–3 s). Prints `requests=N seconds=S rss_kib=R`, with the
//! VmRSS read two seconds before the end.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use wasmtime::component::{Accessor, Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store};

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async | store },
    with: {
        "prototype:shared-instance/host.request": RequestState,
        "prototype:shared-instance/host.response": ResponseState,
        "prototype:shared-instance/host.user-context": UserContextState,
    },
});

use prototype::shared_instance::host::{
    Host, HostRequest, HostResponse, HostUserContext, HostUserContextWithStore,
};

pub struct RequestState {
    path: String,
}

pub struct ResponseState {
    status: u16,
}

pub struct UserContextState {
    user: usize,
}

/// The one Store's data: WASI for Rust std, the resource table, and each user's connection
/// (taken out while a request is in flight, so no borrow of the Store spans an await).
pub struct State {
    wasi: wasmtime_wasi::WasiCtx,
    table: ResourceTable,
    connections: Vec<Option<http1::SendRequest<Empty<Bytes>>>>,
    authority: String,
}

impl wasmtime_wasi::WasiView for State {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Host for State {}

impl HostRequest for State {
    async fn new(
        &mut self,
        _method: String,
        path: String,
        _name: String,
    ) -> wasmtime::Result<Resource<RequestState>> {
        Ok(self.table.push(RequestState { path })?)
    }

    async fn drop(&mut self, req: Resource<RequestState>) -> wasmtime::Result<()> {
        self.table.delete(req)?;
        Ok(())
    }
}

impl HostResponse for State {
    async fn status(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&resp)?.status)
    }

    async fn drop(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<()> {
        self.table.delete(resp)?;
        Ok(())
    }
}

impl HostUserContext for State {
    async fn drop(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

async fn connect(authority: &str) -> Option<http1::SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(authority).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Some(sender)
}

impl<T> HostUserContextWithStore<T> for HasSelf<State> {
    async fn send(
        accessor: &Accessor<T, Self>,
        ctx: Resource<UserContextState>,
        req: Resource<RequestState>,
    ) -> wasmtime::Result<Result<Resource<ResponseState>, u32>> {
        let (user, path, sender, authority) = accessor.with(|mut access| {
            let state = access.get();
            let user = state.table.get(&ctx)?.user;
            let path = state.table.delete(req)?.path;
            let sender = state.connections[user].take();
            wasmtime::Result::<_>::Ok((user, path, sender, state.authority.clone()))
        })?;
        let Some(mut sender) = (match sender {
            Some(sender) => Some(sender),
            None => connect(&authority).await,
        }) else {
            return Ok(Err(1));
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::new())?;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        accessor.with(|mut access| {
            let state = access.get();
            match exchange {
                Ok(status) => {
                    state.connections[user] = Some(sender);
                    Ok(Ok(state.table.push(ResponseState { status })?))
                }
                Err(_) => Ok(Err(2)),
            }
        })
    }
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: shared-instance-host PLUGIN.wasm HOST:PORT PATH USERS SECONDS WAIT_MS");
        std::process::exit(2);
    }
    let number = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("argument {i} must be a whole number, got {}", args[i]);
            std::process::exit(2)
        })
    };
    let (plugin_file, authority, path) = (&args[1], args[2].clone(), args[3].clone());
    let (users, seconds, wait_ms) = (number(4) as usize, number(5), number(6));

    let mut config = Config::new();
    config.wasm_component_model_async(true);
    config.concurrency_support(true);
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, plugin_file)?;
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<_, HasSelf<State>>(&mut linker, |state| state)?;
    let pre = PluginPre::new(linker.instantiate_pre(&component)?)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let requests = Arc::new(AtomicU64::new(0));
    let rss_kib = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    local.block_on(&runtime, async {
        let state = State {
            wasi: wasmtime_wasi::WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            connections: (0..users).map(|_| None).collect(),
            authority,
        };
        let mut store = Store::new(&engine, state);
        let plugin = pre.instantiate_async(&mut store).await?;
        let (stop_timer, rss) = (stop.clone(), rss_kib.clone());
        tokio::task::spawn_local(async move {
            let end = Duration::from_secs(seconds);
            tokio::time::sleep(end.saturating_sub(Duration::from_secs(2))).await;
            rss.store(vm_rss_kib(), Ordering::Relaxed);
            tokio::time::sleep(end.min(Duration::from_secs(2))).await;
            stop_timer.store(true, Ordering::Relaxed);
        });
        store
            .run_concurrent(async |accessor| -> wasmtime::Result<()> {
                let guest = &plugin.prototype_shared_instance_behaviour().user();
                let mut loops = FuturesUnordered::new();
                for id in 0..users {
                    let (path, requests, stop) = (path.clone(), &requests, &stop);
                    loops.push(async move {
                        let ctx = accessor.with(|mut access| {
                            access.get().table.push(UserContextState { user: id })
                        })?;
                        let user = guest.call_constructor(accessor, path, ctx).await?;
                        while !stop.load(Ordering::Relaxed) {
                            let status = guest.call_run_task(accessor, user, 0).await?;
                            if status >= 400 {
                                eprintln!("user {id}: status {status}");
                            }
                            requests.fetch_add(1, Ordering::Relaxed);
                            if wait_ms > 0 {
                                let ms = wait_ms / 2 + (id as u64 * 7919) % wait_ms;
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                        }
                        wasmtime::Result::<()>::Ok(())
                    });
                }
                while let Some(result) = loops.next().await {
                    result?;
                }
                Ok(())
            })
            .await??;
        wasmtime::Result::<()>::Ok(())
    })?;
    println!(
        "requests={} seconds={:.2} rss_kib={}",
        requests.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        rss_kib.load(Ordering::Relaxed)
    );
    Ok(())
}
