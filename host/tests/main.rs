//! All integration tests in one binary (each test binary links wasmtime again).

mod bench;
mod client;
mod demo;
mod deploy;
mod engine;
mod faults;
mod gate;
mod hostile;
mod http2;
mod languages;
mod layers;
mod metrics;
mod open_model;
mod plugins;
mod profile;
mod report;
mod results;
mod scenarios;
mod shards;
mod slurm;
mod support;
mod web_browser;
mod web_ui;
