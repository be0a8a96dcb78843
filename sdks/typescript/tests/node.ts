// One real Baton node per test file: started before its tests, stopped after.
import { after, before } from 'node:test';

import { startNode, type RunningNode } from '../scripts/node.mjs';
import { Baton, type BatonOptions } from '@baton-dev/client';

export interface TestNode {
  /** The node's base URL. */
  readonly url: string;
  /** A client of the node. */
  client(options?: BatonOptions): Baton;
}

export function useNode(options?: Parameters<typeof startNode>[0]): TestNode {
  let node: RunningNode | undefined;
  before(async () => {
    node = await startNode(options);
  });
  after(async () => {
    await node?.stop();
  });
  const running = () => {
    if (!node) throw new Error('the node is not started');
    return node;
  };
  return {
    get url() {
      return running().url;
    },
    client(options = {}) {
      return new Baton({ url: running().url, ...options });
    },
  };
}
