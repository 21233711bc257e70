/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_sample: a recorded trace line as job statistics (see trace_sample.h).
 */
#include "trace_sample.h"

#include <string.h>

static long long
field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

bool
trace_sample_from_json(json_t *o, struct wk_job_sample *ret)
{
	struct wk_job_sample s;

	if (!json_is_object(o) || json_object_get(o, "event") != NULL)
		return false;
	memset(&s, 0, sizeof(s));
	s.t_ms = (uint64_t)field(o, "t_ms");
	s.type = (int)field(o, "type");
	s.memory_total = field(o, "memory_total");
	s.memory_processed = field(o, "memory_processed");
	s.memory_remaining = field(o, "memory_remaining");
	s.data_total = field(o, "data_total");
	s.data_processed = field(o, "data_processed");
	s.data_remaining = field(o, "data_remaining");
	s.disk_total = field(o, "disk_total");
	s.disk_processed = field(o, "disk_processed");
	s.disk_remaining = field(o, "disk_remaining");
	s.memory_dirty_rate = field(o, "memory_dirty_rate");
	s.memory_page_size = field(o, "memory_page_size");
	s.memory_bps = field(o, "memory_bps");
	s.memory_iteration = field(o, "memory_iteration");
	s.time_elapsed_ms = field(o, "time_elapsed");
	s.downtime_ms = field(o, "downtime");
	s.setup_time_ms = field(o, "setup_time");
	s.auto_converge_throttle = field(o, "auto_converge_throttle");
	s.memory_postcopy_requests = field(o, "memory_postcopy_requests");
	*ret = s;
	return true;
}
