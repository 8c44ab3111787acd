//! `sqlx::migrate!` embeds the migrations at compile time, but cargo does not know to rebuild
//! this crate when a migration is added: say so (the advice of sqlx's documentation).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
