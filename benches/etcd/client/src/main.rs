//! `etcd-put-load`: N concurrent tasks issue puts to etcd for a fixed time, each waiting for
//! its put's answer before the next (etcd answers a put once it is committed by a quorum and
//! applied). Counts the acknowledged puts only and their latencies, and prints one line of
//! JSON.
//!
//! ```text
//! etcd-put-load --endpoints http://127.0.0.1:2379 --clients 1024 --connections 4 \
//!     --duration 8 --key-size 32 --value-size 158
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use etcd_client::{Client, KvClient};

struct Args {
    endpoints: Vec<String>,
    clients: usize,
    connections: usize,
    duration: Duration,
    key_size: usize,
    value_size: usize,
}

fn usage() -> &'static str {
    "usage: etcd-put-load [--endpoints URL[,URL..]] [--clients N] [--connections C] \
     [--duration SECS] [--key-size B] [--value-size B]"
}

fn parse() -> Result<Args> {
    let mut a = Args {
        endpoints: vec!["http://127.0.0.1:2379".into()],
        clients: 1024,
        connections: 4,
        duration: Duration::from_secs(8),
        key_size: 32,
        value_size: 158,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let v = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--endpoints" => a.endpoints = v.split(',').map(str::to_owned).collect(),
            "--clients" => a.clients = v.parse()?,
            "--connections" => a.connections = v.parse()?,
            "--duration" => a.duration = Duration::from_secs_f64(v.parse()?),
            "--key-size" => a.key_size = v.parse()?,
            "--value-size" => a.value_size = v.parse()?,
            _ => bail!("unknown flag {flag}\n{}", usage()),
        }
    }
    if a.clients == 0 || a.connections == 0 || a.key_size < 12 {
        bail!("--clients and --connections must be > 0, --key-size >= 12");
    }
    Ok(a)
}

/// What one task did.
#[derive(Default)]
struct Done {
    latencies: Vec<Duration>,
    errors: u64,
    last: Option<Instant>,
}

async fn task(
    mut kv: KvClient,
    id: u32,
    deadline: Instant,
    key_size: usize,
    value: Vec<u8>,
) -> Done {
    let mut d = Done::default();
    let mut key = vec![0u8; key_size];
    key[..4].copy_from_slice(&id.to_be_bytes());
    let mut seq: u64 = 0;
    while Instant::now() < deadline {
        // A distinct key per put, like a transaction hash: 4 bytes of task, 8 of sequence,
        // the rest a fixed fill.
        key[4..12].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in key[12..].iter_mut().enumerate() {
            *b = (i as u8) ^ (seq as u8);
        }
        seq += 1;
        let t0 = Instant::now();
        match kv.put(key.clone(), value.clone(), None).await {
            Ok(_) => {
                let now = Instant::now();
                d.latencies.push(now - t0);
                d.last = Some(now);
            }
            Err(_) => {
                d.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    d
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse()?;
    let mut conns = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        // One client (one HTTP/2 channel over the endpoints) per connection.
        let c = Client::connect(a.endpoints.clone(), None)
            .await
            .with_context(|| format!("connecting to {:?}", a.endpoints))?;
        conns.push(c);
    }
    let value: Vec<u8> = (0..a.value_size).map(|i| (i % 251) as u8).collect();
    // One put before the clock: the channels are up.
    for c in &mut conns {
        c.put(vec![0xFFu8; a.key_size], value.clone(), None)
            .await
            .context("first put")?;
    }
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut handles = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let kv = conns[i % a.connections].kv_client();
        handles.push(tokio::spawn(task(
            kv,
            i as u32,
            deadline,
            a.key_size,
            value.clone(),
        )));
    }
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut last = start;
    for h in handles {
        let d = h.await?;
        lat.extend(d.latencies);
        errors += d.errors;
        if let Some(l) = d.last {
            last = last.max(l);
        }
    }
    lat.sort_unstable();
    let span = (last - start).as_secs_f64();
    let puts = lat.len();
    println!(
        "{{\"puts\":{puts},\"errors\":{errors},\"seconds\":{span:.3},\"puts_per_s\":{:.1},\
         \"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"clients\":{},\"connections\":{},\
         \"key_size\":{},\"value_size\":{}}}",
        puts as f64 / span.max(1e-9),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        a.clients,
        a.connections,
        a.key_size,
        a.value_size,
    );
    Ok(())
}
