//! A spin lock is released by the processor that took it, at the IRQL it
//! raised to: the guard cannot be sent to another thread.
use storport::SpinLock;

fn release_elsewhere(lock: &SpinLock<u32>) {
    let guard = lock.lock();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(guard));
    });
}

fn main() {
    let _: fn(&SpinLock<u32>) = release_elsewhere;
}
