/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv_libvirt_priv.h - test-only access to the libvirt backend (libvirt's
 * _priv.h habit): the rule that tells a dead connection from a definite
 * answer, and how many connections to other hosts are kept open.  Pure or
 * thread-safe; never logs.
 */
#ifndef WK_HV_LIBVIRT_PRIV_H
#define WK_HV_LIBVIRT_PRIV_H

#include <stdbool.h>

/* Whether a failed call's libvirt error (virErrorNumber code, virErrorDomain
 * domain, message, NULL-safe) and virConnectIsAlive()'s answer right after
 * it (1, 0, or -1 when it could not tell) mean the connection itself is
 * dead, so the call is worth making once more on a fresh one.  A definite
 * answer from the other daemon (VIR_ERR_NO_DOMAIN) never is. */
bool wk_hv_libvirt_conn_dead(int code, int domain, const char *message, int alive);

/* How many connections to other hosts' libvirtd priv (a libvirt backend's
 * priv) keeps open for the next remote_domain_info. */
int wk_hv_libvirt_remote_kept(void *priv);

#endif /* WK_HV_LIBVIRT_PRIV_H */
