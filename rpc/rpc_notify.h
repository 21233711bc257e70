/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_notify: the inner message of an oslo.messaging messagingv2
 * notification, as nova 26.2.2 publishes it (oslo-wire.md section 5), and
 * its routing key.  Pure jansson: no I/O, no logging, no globals; any thread.
 * The 2.0 envelope around the message is built elsewhere.
 */
#ifndef RPC_NOTIFY_H
#define RPC_NOTIFY_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

/* Length of a notification timestamp buffer: "YYYY-MM-DD HH:MM:SS.ffffff". */
#define RPC_NOTIFY_TS_LEN 32

/*
 * Builds the inner notification message, keys in oslo's order: message_id
 * (uuid4, dashed), publisher_id, event_type, priority (copied as given; pass
 * upper case: "INFO", "WARN", "ERROR"), payload, timestamp (UTC now, exactly
 * Python's str(datetime.utcnow())), _unique_id (uuid4 hex) and the 25
 * _context_* keys nova's notifications carry after oslo's _sanitize_context
 * and nova's RequestContext.from_dict().to_dict(): ids, names, is_admin,
 * roles, request ids and system_scope survive from @context; auth_token,
 * remote_address, quota_class, resource_uuid are null; service_catalog is
 * []; read_only/show_deleted false; read_deleted "no"; is_admin_project
 * true; user_identity is recomputed; _context_timestamp is now.  A context
 * without request_id gets a fresh "req-<uuid4>" as nova would.
 * @payload is STOLEN (also on failure).  @context is BORROWED, keys without
 * the "_context_" prefix (rpc_msg_context()), and may be NULL.  NULL strings
 * become JSON null.  Returns a new reference, or NULL on ENOMEM.
 */
json_t *rpc_notify_build(const char *publisher_id, const char *event_type, const char *priority,
    json_t *payload, json_t *context);

/*
 * Writes "<topic>.<priority in lower case>" (e.g. versioned_notifications.warn)
 * into @buf.  Returns 0, -EINVAL on a NULL argument, -ENOSPC if @len is too
 * small (@buf is then left as an empty string when @len > 0).
 */
int rpc_notify_routing_key(const char *topic, const char *priority, char *buf, size_t len);

/*
 * Formats @ts (UTC) as Python's str(datetime): "YYYY-MM-DD HH:MM:SS.ffffff",
 * without the fraction when the microseconds are 0.  Returns 0, -EINVAL on
 * NULL or an unrepresentable time, -ENOSPC if @len < RPC_NOTIFY_TS_LEN.
 */
int rpc_notify_format_timestamp(const struct timespec *ts, char *buf, size_t len);

#endif
