/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_sdnotify.c - the sd_notify datagram reaches a socket bound where
 * $NOTIFY_SOCKET says (path and abstract), nothing happens without it, and
 * $WATCHDOG_USEC / $WATCHDOG_PID are read as systemd documents them.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_sdnotify.h"

static int
bound_socket(const char *name)
{
	struct sockaddr_un sa;
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa,
	                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
	    0);
	return fd;
}

static void
expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	cr_assert_gt(n, 0, "no datagram received");
	buf[n] = '\0';
	cr_assert_str_eq(buf, want);
}

Test(wk_sdnotify, path_socket_receives_the_state)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/ferry-notify-%d", (int)getpid());
	unlink(path);
	fd = bound_socket(path);
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert_eq(wk_sd_notify("READY=1\nSTATUS=started"), 1);
	expect_datagram(fd, "READY=1\nSTATUS=started");
	close(fd);
	unlink(path);
}

Test(wk_sdnotify, abstract_socket_receives_the_state)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@ferry-notify-%d", (int)getpid());
	fd = bound_socket(name);
	setenv("NOTIFY_SOCKET", name, 1);
	cr_assert_eq(wk_sd_notify("WATCHDOG=1"), 1);
	expect_datagram(fd, "WATCHDOG=1");
	close(fd);
}

Test(wk_sdnotify, no_socket_is_a_no_op_and_bad_ones_are_errors)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(wk_sd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	cr_assert_lt(wk_sd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "/tmp/ferry-no-such-socket-here", 1);
	cr_assert_lt(wk_sd_notify("READY=1"), 0);
}

Test(wk_sdnotify, watchdog_period_follows_the_environment)
{
	char pid[32];

	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	cr_assert_eq(wk_sd_watchdog_ms(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	cr_assert_eq(wk_sd_watchdog_ms(), 30000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	cr_assert_eq(wk_sd_watchdog_ms(), 30000);
	setenv("WATCHDOG_PID", "1", 1);
	cr_assert_eq(wk_sd_watchdog_ms(), 0, "meant for another process");
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "soon", 1);
	cr_assert_eq(wk_sd_watchdog_ms(), 0);
}
