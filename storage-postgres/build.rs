//! Rebuilds the crate when a migration changes: `sqlx::migrate!()` embeds
//! the files of `migrations/` at compile time, and cargo does not otherwise
//! know that they are inputs.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
