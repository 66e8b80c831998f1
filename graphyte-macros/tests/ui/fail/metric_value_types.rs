fn main() {
    graphyte::count!("load", 0.5);
    graphyte::gauge!("name", "not a number");
    let id = 7u32;
    graphyte::count!(id, 1);
}
