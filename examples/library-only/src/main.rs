//! Fafnir as a library, with no HTTP at all: a command-line program, a job runner or a service
//! with its own transport can call accounts, sessions and permissions directly.
//!
//! ```sh
//! cargo run -p library-only                      # a temporary SQLite database
//! cargo run -p library-only -- sqlite://my.db    # or your own (postgres:// needs the feature)
//! ```

use library_only::walkthrough;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fafnir-library-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::args().nth(1).unwrap_or_else(|| format!("sqlite://{}", dir.join("fafnir.db").display()));
    for line in walkthrough(&url).await? {
        println!("{line}");
    }
    Ok(())
}
