/* tree-rss: runs a command and reports the largest peak resident set size
 * of any process of its tree, and which process that was.
 *
 *     tree-rss REPORT-FILE PROGRAM ARGS...
 *
 * Why a program of its own: on Linux a process's ru_maxrss (VmHWM) starts
 * from the resident size of the process it was forked from, kept across
 * exec. A command forked straight from the Python harness would count the
 * harness's 10+ MiB; forked from this small program it counts well under
 * 1 MiB, which does not move the max of any real program.
 *
 * It becomes a child subreaper, so every process of the tree, orphans
 * included, is reaped here or by its own parent; wait4's ru_maxrss of a
 * process is already the max over itself and the children it reaped, so the
 * max over what is reaped here is the max over the whole tree. The report
 * is one line, "maxrss_kib=N procs=N comm=NAME", NAME being the command
 * name of the process reaped here that reported the max (a parent that
 * reaped the real peak's process may be named instead of it).
 *
 * TREE_RSS_PRELOAD, when set, becomes LD_PRELOAD of the command (and is
 * removed from its environment), so that this program runs on the C
 * library's allocator whatever is measured. Exits with the command's status
 * (128 + the signal if it was killed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void read_comm(pid_t pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = 0;
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tree-rss REPORT-FILE PROGRAM ARGS...\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("tree-rss: PR_SET_CHILD_SUBREAPER (orphans will not be counted)");
    pid_t root = fork();
    if (root < 0) {
        perror("tree-rss: fork");
        return 2;
    }
    if (root == 0) {
        const char *preload = getenv("TREE_RSS_PRELOAD");
        if (preload) {
            if (*preload)
                setenv("LD_PRELOAD", preload, 1);
            else
                unsetenv("LD_PRELOAD");
            unsetenv("TREE_RSS_PRELOAD");
        }
        execvp(argv[2], argv + 2);
        fprintf(stderr, "tree-rss: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    long max_kib = 0;
    unsigned procs = 0;
    int code = 0;
    char comm[64] = "", peak_comm[64] = "";
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        /* Look before reaping: a zombie still has its name. */
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: the whole tree is gone */
        }
        read_comm(info.si_pid, comm, sizeof comm);
        int status;
        struct rusage ru;
        if (wait4(info.si_pid, &status, 0, &ru) != info.si_pid)
            continue;
        procs++;
        if (ru.ru_maxrss > max_kib) {
            max_kib = ru.ru_maxrss;
            memcpy(peak_comm, comm, sizeof comm);
        }
        if (info.si_pid == root)
            code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    FILE *rep = fopen(argv[1], "w");
    if (rep == NULL) {
        perror("tree-rss: report file");
        return 2;
    }
    fprintf(rep, "maxrss_kib=%ld procs=%u comm=%s\n", max_kib, procs, peak_comm[0] ? peak_comm : "?");
    fclose(rep);
    return code;
}
