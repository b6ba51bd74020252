fn main() {
    println!("netctl {}", env!("CARGO_PKG_VERSION"));
}
