# SPDX-License-Identifier: Apache-2.0
# Environment of the rig's RabbitMQ node (oslo-wire.md §1).  Source it before
# running rabbitmqctl by hand:   . deploy/rig/rabbit-env.sh; rabbitmqctl list_queues
# Loopback only: AMQP on 127.0.0.1:5672, distribution on 127.0.0.1:25672,
# epmd on 127.0.0.1.  Debian's su (without --login) passes these through to
# the rabbitmq user.  Nothing under /etc is edited.
export RABBITMQ_NODENAME=rabbit@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=5672
export RABBITMQ_DIST_PORT=25672
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_PID_FILE=/var/lib/rabbitmq/mnesia/rabbit@localhost.pid
