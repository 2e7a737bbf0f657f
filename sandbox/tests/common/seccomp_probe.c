/* Makes one system call that Docker's default seccomp profile decides on and prints
 * "<name> <return value> <errno>"; `read-key DESC` prints the payload of the user key DESC
 * on uid 0's user keyring if it can reach it. Built static by the seccomp tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEY_SPEC_USER_KEYRING (-4)
#define KEY_SPEC_PROCESS_KEYRING (-2)
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11

static int report(const char *name, long ret) {
    printf("%s %ld %d\n", name, ret, ret < 0 ? errno : 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    if (!strcmp(what, "add_key"))
        return report(what, syscall(SYS_add_key, "user", "strata-probe", "x", 1,
                                    KEY_SPEC_PROCESS_KEYRING));
    if (!strcmp(what, "keyctl"))
        return report(what, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                    KEY_SPEC_USER_KEYRING, 0));
    if (!strcmp(what, "unshare-user"))
        return report(what, unshare(CLONE_NEWUSER));
    if (!strcmp(what, "io_uring_setup")) {
        unsigned char params[120] = {0};
        return report(what, syscall(SYS_io_uring_setup, 1, params));
    }
    if (!strcmp(what, "clone3")) {
        unsigned long long args[11] = {0};
        long ret = syscall(SYS_clone3, args, sizeof args);
        if (ret == 0) _exit(0);
        return report(what, ret);
    }
    if (!strcmp(what, "socket-vsock"))
        return report(what, socket(40, SOCK_STREAM, 0));
    if (!strcmp(what, "socket-inet"))
        return report(what, socket(AF_INET, SOCK_STREAM, 0));
    if (!strcmp(what, "personality-query"))
        return report(what, syscall(SYS_personality, 0xffffffffUL));
    if (!strcmp(what, "personality-no-randomize"))
        return report(what, syscall(SYS_personality, ADDR_NO_RANDOMIZE));
    if (!strcmp(what, "read-key") && argc == 3) {
        long id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", argv[2], 0);
        if (id < 0) return report("search-key", id);
        char buf[256] = {0};
        long n = syscall(SYS_keyctl, KEYCTL_READ, id, buf, sizeof buf - 1);
        if (n < 0) return report("read-key", n);
        printf("payload %s\n", buf);
        return 0;
    }
    return 2;
}
