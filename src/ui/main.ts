/**
 * Boots the PWA: opens this device's peer (IndexedDB + engine), mounts the Svelte app, starts the
 * page's sync scheduler and connects the service worker.
 */
import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { openBrowserPeer, pageAppUrl } from '../browser/peer';
import { workerEnvelopeOpener } from '../browser/envelope-opener';
import { PageSync } from '../browser/page-sync';
import { AppModel } from './state/app.svelte';
import { readTestFlags } from './state/flags';
import { connectServiceWorker } from './state/sw-client';
import { installTestProbe } from './state/test-probe';
import { ensurePush } from './state/push';
import { errorText } from './state/format';

const withOpener = (openEnvelopes: ReturnType<typeof workerEnvelopeOpener>) => (openEnvelopes ? { openEnvelopes } : {});

async function boot(target: HTMLElement): Promise<void> {
  const flags = readTestFlags(location.search);
  // The engine needs its ingest callback before the model that handles it exists.
  let notifyIngest = (): void => undefined;
  const opened = await openBrowserPeer({
    appUrl: pageAppUrl(location),
    onIngest: () => notifyIngest(),
    ...(flags.holdAck ? { beforeAck: holdAckForever } : {}),
    ...withOpener(workerEnvelopeOpener()),
  });
  const app = new AppModel(opened.peer);
  notifyIngest = () => app.changed();
  if (flags.probe) installTestProbe(app, opened.store);
  if (!flags.noForeground) {
    app.sync = new PageSync(opened, {
      changed: () => app.changed(),
      state: (s) => (app.connection = s),
      progress: (p) => {
        app.draining = p;
        if (p) app.changed(); // notes appear as the backlog drains
      },
    });
    app.sync.attach();
  }
  await app.refreshPairs();
  mount(App, { target, props: { model: app } });
  try {
    app.worker = await connectServiceWorker((msg) => {
      if (msg.type === 'ingested') {
        app.changed();
        app.announce('New updates arrived in the background.');
      }
    });
  } catch (e) {
    app.announce(`Offline support is unavailable: ${errorText(e)}`, 'error');
  }
  // Push wake (§5.2): keep the registration at the relays current (relays change, keys rotate).
  if (!flags.probe) ensurePush(app.peer).catch((e: unknown) => console.warn('syncropel: push wake not set up', e));
}

/**
 * Test-only (`?e2e-hold-ack=1`): the "crash between ingest and ack" fault. The batch is committed;
 * we mark that on the document and never return, so the test can close the page at this point.
 */
function holdAckForever(envelopeIds: readonly string[]): Promise<void> {
  document.documentElement.dataset.e2eHoldingAck = envelopeIds.join(' ');
  return new Promise<void>(() => undefined);
}

const target = document.getElementById('app');
if (target) {
  boot(target).catch((e: unknown) => {
    target.innerHTML = '';
    const p = document.createElement('p');
    p.className = 'fatal';
    p.setAttribute('role', 'alert');
    p.textContent = `Syncropel could not open its storage on this device: ${errorText(e)}`;
    target.append(p);
  });
}
