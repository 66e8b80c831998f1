fn main() {
    graphyte::count!();
    graphyte::count!(42, 1);
    graphyte::count!("requests", 1, 2);
    graphyte::gauge!("queue.depth");
    graphyte::gauge!("queue.depth",);
    graphyte::gauge!(1.5, 2);
}
