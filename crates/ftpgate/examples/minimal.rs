//! A complete FTP server: `./data` served to user `demo` (password `demo`) on 127.0.0.1:2121
//! until Ctrl-C. Run with `cargo run -p ftpgate --example minimal`.

fn main() -> std::io::Result<()> {
    ftpgate::Server::with_root("data")
        .user("demo", "demo")
        .listen("127.0.0.1:2121")
        .serve_blocking()
}
