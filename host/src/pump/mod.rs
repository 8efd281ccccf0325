//! The megakernel io_queue pump: a host thread services I/O requests that a persistent kernel publishes.
