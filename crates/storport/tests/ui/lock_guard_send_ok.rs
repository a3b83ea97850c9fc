//! Copy the data out under the lock, release it here, send the copy.
use storport::SpinLock;

fn release_here(lock: &SpinLock<u32>) {
    let value = *lock.lock();
    std::thread::scope(|scope| {
        scope.spawn(move || value + 1);
    });
}

fn main() {
    let _: fn(&SpinLock<u32>) = release_here;
}
