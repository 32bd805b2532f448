//! Backing storage for the channel's two byte buffers.
//!
//! With `std`, each buffer is one heap allocation made when the channel is
//! created (never per message), so a `Channel` is small and cheap to move
//! and a 64 KiB buffer never sits on a thread's stack. Without `std` the
//! buffers are inline: keep the channel in a `static` or a large stack.

#[cfg(feature = "std")]
pub(crate) type Buf<const N: usize> = std::boxed::Box<[u8; N]>;

#[cfg(feature = "std")]
pub(crate) fn zeroed<const N: usize>() -> Buf<N> {
    match std::vec![0u8; N].into_boxed_slice().try_into() {
        Ok(buf) => buf,
        Err(_) => unreachable!("a vector of N bytes converts to [u8; N]"),
    }
}

#[cfg(not(feature = "std"))]
pub(crate) type Buf<const N: usize> = [u8; N];

#[cfg(not(feature = "std"))]
pub(crate) fn zeroed<const N: usize>() -> Buf<N> {
    [0; N]
}
