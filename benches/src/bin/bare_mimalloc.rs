//! `bare-mimalloc plain|hardened PORT`: the bare handler of `fafnir_benches::bare` on mimalloc,
//! the allocator of Fafnir's binaries (see `benches/wrk-me.sh`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let hardened = match args.next().as_deref() {
        Some("plain") => false,
        Some("hardened") => true,
        _ => return eprintln!("usage: bare-mimalloc plain|hardened PORT"),
    };
    let Some(port) = args.next().and_then(|p| p.parse().ok()) else {
        return eprintln!("usage: bare-mimalloc plain|hardened PORT");
    };
    fafnir_benches::bare::serve(port, hardened).await;
}
