"""Several front-ends on one store (issue 18 item 3) for the multi-node
tests: a second node's config on an Env's store.

The store is the harness's (carteiro_test.TestStore): one SQLite file that
both nodes open (the daemons' lock on it is shared), or under
CARTEIRO_TEST_BACKEND=postgresql (suite integration-pg) the Env's own
PostgreSQL database, where each node keeps its local state (lock, pid and
stats files) under its own [store] path."""

import copy
import os
import threading

import carteiro_test as ct

PG = ct.BACKEND == "postgresql"


class Node:
    """Another front-end on env's store: the same config with its own
    listening ports (on PostgreSQL also its own [store] path, the node's
    local state), started with env's binaries and stopped by env.stop()."""

    LISTEN = {"mx": ("smtpd", "mx_listen"),
              "submission": ("smtpd", "submission_listen"),
              "submissions": ("smtpd", "submissions_listen"),
              "pop3": ("pop3d", "listen"),
              "pop3s": ("pop3d", "tls_listen")}

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = os.path.join(env.dir, name)
        os.mkdir(self.dir)
        self.sections = copy.deepcopy(env.sections)
        self.ports = {}
        for key, (sec, opt) in self.LISTEN.items():
            if self.sections[sec].get(opt):
                self.ports[key] = ct.free_port()
                self.sections[sec][opt] = "127.0.0.1:%d" % self.ports[key]
        if PG:
            self.sections["store"]["path"] = os.path.join(self.dir,
                                                          "mail.db")
        self.conf = os.path.join(self.dir, "carteiro.conf")
        ct.write_conf(self.conf, self.sections)
        self.smtpd = None
        self.pop3d = None

    def _daemon(self, name, binary, kinds):
        ports = [self.ports[k] for k in kinds if k in self.ports]
        return ct.Daemon("%s (%s)" % (name, self.name),
                         [binary, "-f", "-c", self.conf],
                         os.path.join(self.dir, name + ".log"), ports)

    def smtpd_daemon(self):
        return self._daemon("carteiro-smtpd", ct.SMTPD,
                            ("mx", "submission", "submissions"))

    def start_smtpd(self):
        self.smtpd = self.smtpd_daemon()
        self.smtpd.start()
        self.env.daemons.append(self.smtpd)
        return self.smtpd

    def start_pop3d(self):
        self.pop3d = self._daemon("carteiro-pop3d", ct.POP3D,
                                  ("pop3", "pop3s"))
        self.pop3d.start()
        self.env.daemons.append(self.pop3d)
        return self.pop3d


class LoadThreads:
    """n threads each running self.run(i) until stop() (join); the
    subclass's run() checks self.stop and records under self.lock."""

    def __init__(self, n):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
