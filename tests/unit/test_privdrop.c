/*
 * The privilege drop (common/listener.c priv_drop) keeps exactly the
 * user's groups, primary and supplementary (initgroups: how a key stays
 * readable through a group such as ssl-cert), and daemon_check_reloadable
 * says when the TLS files can no longer be read for SIGHUP.
 */
#include "common/config.h"
#include "common/daemon.h"
#include "common/listener.h"
#include "t.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int
cmp_gid(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Give nobody a supplementary group (gid 4242) in this process only: a
 * private mount namespace with /etc/group bind-mounted over by a copy
 * that has one more line. False when the kernel will not let us.
 */
static bool
child_fake_group(void)
{
	char tmp[] = "/tmp/carteiro-test-group.XXXXXX";
	char buf[65536];
	ssize_t n;
	int in, out;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return false;
	if ((in = open("/etc/group", O_RDONLY)) < 0 ||
	    (out = mkstemp(tmp)) < 0)
		return false;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return false;
	dprintf(out, "carteirotest:x:4242:nobody\n");
	close(in);
	close(out);
	chmod(tmp, 0644);
	n = mount(tmp, "/etc/group", NULL, MS_BIND, NULL);
	unlink(tmp);
	return n == 0;
}

/* In a child: drop to "nobody"; 0 when uid and groups are exactly its
 * (including gid 4242 when child_fake_group worked). */
static int
child_drop(void)
{
	bool fake = child_fake_group();
	struct passwd *pw = getpwnam("nobody");
	gid_t want[64], have[64];
	int nwant = 64, nhave;
	char *err = NULL;

	if (pw == NULL)
		return 10;
	if (getgrouplist("nobody", pw->pw_gid, want, &nwant) < 0)
		return 11;
	if (priv_drop("nobody", &err) != 0)
		return 12;
	if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
	    getgid() != pw->pw_gid)
		return 13;
	nhave = getgroups(64, have);
	if (fake) {
		bool found = false;

		for (int i = 0; i < nhave; i++)
			found |= have[i] == 4242;
		if (!found)
			return 16;	/* the supplementary group was lost */
	} else {
		fprintf(stderr, "note: no mount namespace, the supplementary "
		    "group case is not exercised\n");
	}
	if (nhave != nwant)
		return 14;
	qsort(want, (size_t)nwant, sizeof(gid_t), cmp_gid);
	qsort(have, (size_t)nhave, sizeof(gid_t), cmp_gid);
	return memcmp(want, have, (size_t)nhave * sizeof(gid_t)) == 0 ? 0 : 15;
}

int
main(void)
{
	struct cfg cfg;
	char path[] = "/tmp/carteiro-test-cert.XXXXXX";
	int fd, st;
	pid_t pid;

	t_begin("check_reloadable: readable files pass, a missing one warns");
	fd = mkstemp(path);
	t_assert(fd >= 0);
	close(fd);
	memset(&cfg, 0, sizeof(cfg));
	t_assert(daemon_check_reloadable(&cfg));	/* no TLS at all */
	cfg.tls.cert = path;
	cfg.tls.key = path;
	t_assert(daemon_check_reloadable(&cfg));
	cfg.tls.key = "/nonexistent/carteiro-test.key";
	t_assert(!daemon_check_reloadable(&cfg));
	unlink(path);
	t_end();

	t_begin("priv_drop keeps exactly the user's groups");
	if (geteuid() != 0 || getpwnam("nobody") == NULL) {
		fprintf(stderr, "skip: needs root and a user nobody\n");
	} else {
		pid = fork();
		t_assert(pid >= 0);
		if (pid == 0)
			_exit(child_drop());
		t_assert(waitpid(pid, &st, 0) == pid);
		t_assert(WIFEXITED(st));
		t_assert_int(WEXITSTATUS(st), 0);
	}
	t_end();
	return t_exit();
}
