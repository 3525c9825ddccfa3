#include "stop_signals.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t first_signal = 0;
static volatile sig_atomic_t announce_stop = 0;

static void on_stop_signal(int sig) {
    if (first_signal != 0) {
        // Second request: stop now, as if we had never caught it (the exit status says which signal).
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    first_signal = sig;
    if (announce_stop) {
        static const char line[] = "\ndigits: stop requested: finishing the current step, then writing a checkpoint "
                                   "(send the signal again to stop at once, without one)\n";
        ssize_t ignored = write(STDERR_FILENO, line, sizeof line - 1);
        (void)ignored;
    }
}

void stop_signals_install(int announce) {
    announce_stop = announce != 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;   // reads, writes and MPI's polls carry on
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
}

int stop_signals_received(void) { return first_signal; }
