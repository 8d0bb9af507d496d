/* registry.h - the loop thread's view of every agent's latest status */
#ifndef AEI_SERVER_REGISTRY_H
#define AEI_SERVER_REGISTRY_H

#include "server/heartbeat.h"

#include <stddef.h>

/* Agents by id with their last committed status, and counts by status. The WebSocket hub will
 * keep each agent's full state here for computing deltas. Loop thread only. */
struct registry;

/* Returns a new, empty registry. Caller frees with registry_free(). */
struct registry *registry_new(void);
void registry_free(struct registry *r);
/* Records the latest committed status of an agent, registering it the first time. */
void registry_update(struct registry *r, const char *agent_id, enum hb_status status);
/* Returns HB_STATUS_COUNT counts, indexed like hb_status_names. */
const size_t *registry_counts(const struct registry *r);

#endif
