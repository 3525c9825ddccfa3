#ifndef CSTOP_SIGNALS_H
#define CSTOP_SIGNALS_H
// A signal handler must only touch a volatile sig_atomic_t and call async-signal-safe functions;
// Swift cannot promise either (its globals initialise lazily), so the handler lives here.
//
// SIGINT, SIGTERM and SIGUSR1 (the one mpirun forwards to every rank without killing them), the
// first time: recorded (stop_signals_received) and, if `announce`, one line written to stderr;
// training finishes its step on every rank, saves and exits. The second time: the signal's default
// action, at once.
void stop_signals_install(int announce);
/// The first stop signal received (SIGINT, SIGTERM or SIGUSR1), or 0.
int stop_signals_received(void);
#endif
