// Package timerslack gives a Go process a larger timer slack, the time by which the
// kernel may delay a thread's timed sleep to wake it with others.
//
// A busy Go process's runtime monitor thread (sysmon) sleeps 20 µs at a time; with the
// kernel's default slack of 50 µs it wakes thousands of times a second, and each
// wake-up costs a context switch and often a reschedule interrupt on a CPU that other
// work is using. A slack of 1 ms lets the kernel gather those wake-ups (see
// docs/decisions.md, "Performance round 2"). The server runs with one (TIMER_SLACK),
// and so does the bench's load generator, acpload (-timer-slack).
//
// The kernel keeps a slack per thread: a thread starts with the slack of the thread that
// starts it, and a child process with the slack of the thread that forks it. Raise
// reaches every thread of the process by replacing its image, and AsStarted starts a
// child with the slack the process itself was started with.
package timerslack

// MaxThreadName is the most bytes of a thread's name the kernel keeps (TASK_COMM_LEN
// less its terminating NUL).
const MaxThreadName = 15
