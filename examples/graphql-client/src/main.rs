//! `cargo run -p graphql-client -- ada@example.com` (password on stdin), against the server at
//! `FAFNIR_URL` (default `http://127.0.0.1:8080`, where `cargo run --release --bin fafnir` listens).
//! Logs in, prints `me`, logs out.

use std::io::BufRead;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let base = std::env::var("FAFNIR_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let Some(email) = std::env::args().nth(1) else {
        eprintln!("usage: graphql-client EMAIL  (the password is read from stdin)");
        return ExitCode::from(2);
    };
    let mut password = String::new();
    if std::io::stdin().lock().read_line(&mut password).is_err() {
        eprintln!("error: cannot read the password from stdin");
        return ExitCode::from(2);
    }
    let run = async {
        let client = graphql_client::Client::new(&base)?;
        client.login(&email, password.trim_end_matches(['\r', '\n'])).await?;
        let me = client.me().await?;
        println!("{}", serde_json::to_string_pretty(&me).unwrap_or_default());
        client.logout().await
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
