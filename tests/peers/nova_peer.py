#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Nova's own code as ferry's peer: casts and calls made by nova's
nova.compute.rpcapi.ComputeAPI and oslo.messaging's RPCClient, exactly as the
control plane sends them.  Run with /usr/bin/python3 (Debian's python3-nova).

    nova_peer.py live-migration --uuid U --source host1 --dest host2
    nova_peer.py force-complete --uuid U --source host1
    nova_peer.py abort --uuid U --source host1 [--migration-id 7]
    nova_peer.py list --host host1
"""
import argparse
import json
import os
import sys
import tempfile
import uuid as uuidlib

_ready = False
DEFAULT_URL = os.environ.get("FERRY_TRANSPORT_URL", "rabbit://nova:nova@127.0.0.1:5672/")


def setup(url=DEFAULT_URL):
    """Boots nova's config and RPC layer (no database), once per process."""
    global _ready
    if _ready:
        return
    import nova.config
    import nova.conf
    import nova.objects
    import nova.rpc

    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(
        "[DEFAULT]\ntransport_url = %s\nrpc_response_timeout = 30\n"
        "[upgrade_levels]\ncompute = zed\n"
        "[notifications]\nnotification_format = versioned\n"
        "[oslo_messaging_notifications]\ndriver = messagingv2\n" % url
    )
    conf.close()
    nova.objects.register_all()
    nova.config.parse_args(["nova-peer"], default_config_files=[conf.name],
                           configure_db=False, init_rpc=False)
    nova.rpc.init(nova.conf.CONF)
    os.unlink(conf.name)
    _ready = True


def context():
    import nova.context
    return nova.context.RequestContext(
        "3f1a9a1e2d3c4b5a8f7e6d5c4b3a2f1e", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
        is_admin=True, user_name="admin", project_name="admin",
        roles=["admin", "member"], remote_address="127.0.0.1")


def instance(ctx, uuid, host, extra_specs=None, image_props=None):
    """An Instance as nova-api + conductor load it for a live migration."""
    from nova import objects
    from nova.network import model as network_model

    flavor = objects.Flavor(
        id=1, flavorid="1", name="ferry.tiny", memory_mb=256, vcpus=1, root_gb=0,
        ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=True, extra_specs=dict(extra_specs or {}), description=None)
    sysmeta = {"image_" + k: str(v) for k, v in (image_props or {}).items()}
    vif = network_model.VIF(
        id="6b3c1a2d-0000-4000-8000-0000000000aa", address="fa:16:3e:00:00:01",
        network=network_model.Network(
            id="net-1", label="private",
            subnets=[network_model.Subnet(
                cidr="127.0.100.0/24", version=4,
                ips=[network_model.FixedIP(address="127.0.100.5", version=4)])]),
        type="ovs", devname="tap6b3c1a2d-00")
    inst = objects.Instance(
        ctx, id=1, uuid=uuid, host=host, node=host, display_name="ferry-demo",
        display_description="ferry demo guest", vm_state="active", task_state="migrating",
        power_state=1, memory_mb=256, vcpus=1, root_gb=0, ephemeral_gb=0, flavor=flavor,
        metadata={}, system_metadata=sysmeta, user_id=ctx.user_id, project_id=ctx.project_id,
        image_ref="155d900f-4e14-4e4c-a73d-069cbf4541e6", launched_at=None,
        availability_zone="nova", reservation_id="r-ferry", os_type="linux",
        architecture="x86_64", locked=False, locked_by=None, key_name=None, kernel_id="",
        ramdisk_id="", auto_disk_config=False, progress=0, launched_on=host,
        hostname="ferry-demo")
    inst.info_cache = objects.InstanceInfoCache(
        network_info=network_model.NetworkInfo([vif]), instance_uuid=uuid)
    inst.obj_reset_changes()
    return inst


def migration(ctx, uuid, source, dest, mig_id=7):
    from nova import objects
    m = objects.Migration(
        ctx, id=mig_id, uuid=str(uuidlib.uuid4()), source_compute=source, dest_compute=dest,
        source_node=source, dest_node=dest, dest_host=dest, instance_uuid=uuid,
        status="accepted", migration_type="live-migration")
    m.obj_reset_changes()
    return m


def migrate_data(block=False):
    from nova import objects
    return objects.LibvirtLiveMigrateData(
        filename="", image_type="default", block_migration=block, disk_available_mb=10240,
        is_shared_instance_path=True, is_shared_block_storage=not block,
        is_volume_backed=False, graphics_listen_addr_vnc="127.0.0.1",
        serial_listen_addr="127.0.0.1", dst_wants_file_backed_memory=False)


def compute_api():
    from nova.compute import rpcapi
    return rpcapi.ComputeAPI()


def cast_live_migration(uuid, source, dest, block=False, extra_specs=None, image_props=None,
                        mig_id=7):
    setup()
    ctx = context()
    inst = instance(ctx, uuid, source, extra_specs, image_props)
    compute_api().live_migration(ctx, inst, dest, block, source,
                                 migration(ctx, uuid, source, dest, mig_id),
                                 migrate_data(block))
    return ctx.request_id


def cast_force_complete(uuid, source, dest="unknown"):
    setup()
    ctx = context()
    compute_api().live_migration_force_complete(
        ctx, instance(ctx, uuid, source), migration(ctx, uuid, source, dest))
    return ctx.request_id


def cast_abort(uuid, source, mig_id=7):
    setup()
    ctx = context()
    compute_api().live_migration_abort(ctx, instance(ctx, uuid, source), mig_id)
    return ctx.request_id


def rpc_client(server, version="6.0", namespace=None, timeout=30):
    """oslo's own RPCClient on nova's transport, aimed at compute.<server>."""
    setup()
    import nova.rpc
    import oslo_messaging as messaging
    target = messaging.Target(topic="compute", server=server, version=version,
                              namespace=namespace)
    return messaging.RPCClient(nova.rpc.TRANSPORT, target, timeout=timeout)


def list_migrations(host):
    return rpc_client(host, version="1.0", namespace="ferry").call(context(), "list_migrations")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["live-migration", "force-complete", "abort", "list"])
    ap.add_argument("--uuid")
    ap.add_argument("--source")
    ap.add_argument("--dest")
    ap.add_argument("--host")
    ap.add_argument("--migration-id", type=int, default=7)
    ap.add_argument("--block", action="store_true")
    ap.add_argument("--url", default=DEFAULT_URL)
    a = ap.parse_args()
    setup(a.url)
    if a.action == "live-migration":
        rid = cast_live_migration(a.uuid, a.source, a.dest, a.block, mig_id=a.migration_id)
    elif a.action == "force-complete":
        rid = cast_force_complete(a.uuid, a.source)
    elif a.action == "abort":
        rid = cast_abort(a.uuid, a.source, a.migration_id)
    else:
        print(json.dumps(list_migrations(a.host), indent=2))
        return 0
    print("cast %s sent, request id %s" % (a.action, rid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
