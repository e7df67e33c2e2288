/**
 * A private local RabbitMQ cluster for tests: `size` private nodes (see `rabbitmq-node.ts`: own node
 * names, AMQP and distribution ports on loopback, data directories, plugins files), sharing one
 * fresh Erlang cookie, started in parallel and joined to the first with
 * `rabbitmqctl -n <node> stop_app; join_cluster <first>; start_app`. The shared node on 5672 is
 * never touched; `destroy` SIGKILLs every node's Erlang VM by its PID and removes its directory.
 */
import { randomUUID } from 'node:crypto';
import { startPrivateRabbit, type PrivateRabbit } from './rabbitmq-node.js';

/** A private RabbitMQ cluster. */
export interface PrivateRabbitCluster {
  /** The nodes, the one the others joined first. */
  readonly nodes: readonly PrivateRabbit[];
  /** AMQP URLs of the nodes, in node order. */
  readonly urls: readonly string[];
  /** Names of the cluster's running nodes as `rabbitmqctl cluster_status` on `via` reports them. */
  runningNodes(via?: PrivateRabbit): Promise<string[]>;
  /** Kills every node and removes every data directory. */
  destroy(): Promise<void>;
}

/** Whether the cluster tests run (`TASUKI_RABBIT_CLUSTER=1`): they start three RabbitMQ nodes. */
export const clusterTestsEnabled = process.env.TASUKI_RABBIT_CLUSTER === '1';

/** Starts a `size`-node private cluster (default 3) and waits until every node runs in it. */
export async function startPrivateRabbitCluster(size = 3): Promise<PrivateRabbitCluster> {
  const cookie = randomUUID().replace(/-/g, '').toUpperCase();
  const started = await Promise.allSettled(Array.from({ length: size }, () => startPrivateRabbit({ cookie })));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const destroy = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.destroy()));
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await destroy();
    throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
  const first = nodes[0];
  if (!first) throw new Error('a cluster needs at least one node');
  try {
    // One at a time: concurrent joins to the same node race on the cluster's membership.
    for (const n of nodes.slice(1)) {
      await n.ctl('stop_app');
      await n.ctl('join_cluster', first.node);
      await n.ctl('start_app');
      await n.ctl('await_startup');
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  const runningNodes = async (via: PrivateRabbit = first): Promise<string[]> => {
    const status = JSON.parse(await via.ctl('cluster_status', '--formatter', 'json')) as { running_nodes?: string[] };
    return [...(status.running_nodes ?? [])].sort();
  };
  return { nodes, urls: nodes.map((n) => n.url), runningNodes, destroy };
}
