/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_sample: one line of a recorded trace (tests/data/traces/<name>.jsonl,
 * written by tests/traces/record.py) as a struct wk_job_sample.  Shared by
 * the policy replay tests and the flow harness.  Pure; never logs.
 */
#ifndef TRACE_SAMPLE_H
#define TRACE_SAMPLE_H

#include <stdbool.h>

#include <jansson.h>

#include "wk_progress.h"

/* Fills *ret from a sample line o (borrowed); absent fields are -1, as
 * libvirt's.  false (ret untouched) for an event line ({"event": ...}). */
bool trace_sample_from_json(json_t *o, struct wk_job_sample *ret);

#endif /* TRACE_SAMPLE_H */
