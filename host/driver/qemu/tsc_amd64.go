package qemu

const haveTSC = true

// rdtsc returns the processor's time-stamp counter.
func rdtsc() uint64
