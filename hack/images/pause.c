/* The sandbox ("pause") container of the real node: PID 1 of a pod that holds its namespaces and
 * does nothing else. Built with `gcc -static` by hack/build-images.sh into a scratch image
 * (localhost/pause:flux), so no sandbox image has to come from a registry. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

/* As PID 1 it inherits orphans of the pod: reap them so none stays a zombie. */
static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &term, NULL);
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
    return EXIT_FAILURE;
}
