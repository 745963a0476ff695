// The pieces of zero-touch and phone provisioning that need no network: the device
// identity, sealing, claim signatures, the broker files, templates and time zones.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { mosquittoPasswordHash, renderAcl, renderPasswordFile } from '../../controller/broker-auth.ts';
import { claimSignatureValid, signClaim, type ClaimRequest } from '../../provisioning/claim/protocol.ts';
import { open, seal } from '../../provisioning/claim/sealed.ts';
import { identityFile, loadOrCreateIdentity, serialOf } from '../../provisioning/identity.ts';
import { overlayGrant, PROVISIONED_FILE, provisioningDir, readProvisioned, type ProvisionedRecord } from '../../provisioning/provisioned.ts';
import { ensurePhoneCredentials } from '../../provisioning/phones/credentials.ts';
import { Template } from '../../provisioning/phones/templates.ts';
import { offsetHours, standardOffsetMinutes } from '../../provisioning/phones/time-zone.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'branchline-prov-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('device identity', () => {
  test('made once, mode 0600, serial bound to the signing key', () => {
    const d = path.join(dir, 'id');
    const first = loadOrCreateIdentity(d);
    assert.equal(first.created, true);
    assert.match(first.identity.serial, /^BL-[0-9A-F]{12}$/);
    assert.equal(serialOf(first.identity.sign_public), first.identity.serial);
    assert.equal(statSync(identityFile(d)).mode & 0o777, 0o600);
    const again = loadOrCreateIdentity(d);
    assert.equal(again.created, false);
    assert.equal(again.identity.serial, first.identity.serial);
  });

  test('an identity whose serial does not match its key is refused', () => {
    const d = path.join(dir, 'forged');
    const { identity } = loadOrCreateIdentity(d);
    writeFileSync(identityFile(d), JSON.stringify({ ...identity, serial: 'BL-000000000000' }));
    assert.throws(() => loadOrCreateIdentity(d), /serial does not belong to the key/);
  });
});

describe('claim crypto', () => {
  const { identity } = loadOrCreateIdentity(path.join(dir, 'crypto'));
  const other = loadOrCreateIdentity(path.join(dir, 'crypto-other')).identity;

  test('sealed to the box key: its owner opens it, nobody else', () => {
    const sealed = seal(identity.box_public, 'the broker password');
    assert.equal(open(identity.box_private, sealed), 'the broker password');
    assert.throws(() => open(other.box_private, sealed), /cannot open/);
    assert.throws(() => open(identity.box_private, { ...sealed, ciphertext: Buffer.from('x').toString('base64') }), /cannot open/);
  });

  test('a claim signature covers the token and keys', () => {
    const base = { v: 1 as const, id: 'id-1', stream: 'claim' as const, seq: 1, boot: 'b', ts: 1, serial: identity.serial, token: 'tok-123456', sign_key: identity.sign_public, box_key: identity.box_public, agent: '0.1.0', hardware: { arch: 'x64', hostname: 'h', macs: [] } };
    const signed: ClaimRequest = signClaim(base, identity.sign_private);
    assert.equal(claimSignatureValid(signed), true);
    assert.equal(claimSignatureValid({ ...signed, token: 'tok-654321' }), false);
    assert.equal(claimSignatureValid({ ...signed, box_key: other.box_public }), false, 'a swapped box key would let someone else read the grant');
    assert.equal(claimSignatureValid({ ...signed, sign_key: other.sign_public }), false);
  });
});

describe('broker files', () => {
  test('the password hash is Mosquitto 2.0 $7$ (checked against mosquitto_passwd output)', () => {
    // `mosquitto_passwd -b pw alice secret` wrote this line with this salt.
    const salt = Buffer.from('upMspcAqlhJP9aPw', 'base64');
    assert.equal(mosquittoPasswordHash('secret', salt), '$7$101$upMspcAqlhJP9aPw$LC8dAls6sZMbNfDZ0WhxUSMZRi0JUbzHRRyjXPRBeOzGwZTlZTo7bk/wnNkhnGO02vlgfFnzsELo/qoyZL7yiA==');
  });

  test('each site gets its own topics only; a name cannot inject ACL lines', () => {
    const h = mosquittoPasswordHash('x');
    const acl = renderAcl({ controller: { username: 'controller', passwordHash: h }, sites: [{ username: 'site-b', passwordHash: h }, { username: 'site-a', passwordHash: h }] });
    const siteA = acl.slice(acl.indexOf('user site-a'), acl.indexOf('user site-b'));
    assert.match(siteA, /^topic write branchline\/v1\/site\/site-a\/up\/\+$/m);
    assert.doesNotMatch(siteA, /site-b/);
    assert.doesNotMatch(siteA, /readwrite|#/);
    assert.match(acl, /^pattern write branchline\/v1\/claim\/%c\/req$/m);
    assert.equal(renderPasswordFile({ controller: { username: 'controller', passwordHash: h }, sites: [] }), `controller:${h}\n`);
    assert.throws(() => renderAcl({ controller: { username: 'controller', passwordHash: h }, sites: [{ username: 'evil\ntopic readwrite #', passwordHash: h }] }), /cannot be a broker username/);
  });
});

describe('grant overlay', () => {
  test('the controller sets site, broker login and config, never local-only keys', () => {
    const record: ProvisionedRecord = {
      serial: 'BL-000000000000',
      site: 'site-a',
      claimed_at: '',
      claim_url: 'mqtt://claim:1883',
      grant: { site: 'site-a', config_version: 0, config: { state_dir: '/elsewhere', sip: { domain: 'a.example' } }, mqtt: { username: 'site-a', password: 'p', client_id: 'branchline-site-site-a' } },
    };
    const merged = overlayGrant({ site: { id: 'unprovisioned', name: 'box' }, state_dir: './data', sip: { domain: 'factory', udp: '0.0.0.0:5060' } }, record);
    assert.deepEqual(merged['site'], { id: 'site-a', name: 'box' });
    assert.equal(merged['state_dir'], './data');
    assert.deepEqual(merged['sip'], { domain: 'a.example', udp: '0.0.0.0:5060' });
    assert.deepEqual(merged['mqtt'], { url: 'mqtt://claim:1883', username: 'site-a', password: 'p', client_id: 'branchline-site-site-a' });
  });
});

describe('phone templates and credentials', () => {
  test('unknown placeholders are refused when a template loads', () => {
    assert.throws(() => new Template('t', 'a = {{pasword}}', 'cfg-lines'), /unknown placeholder \{\{pasword\}\}/);
  });

  test('values are escaped for the format', () => {
    const values = Object.fromEntries(['mac', 'extension', 'auth_user', 'password', 'display_name', 'label', 'sip_server', 'sip_port', 'domain', 'voicemail_number', 'ntp_server', 'time_zone', 'tz_offset_hours', 'tz_offset_minutes', 'tz_offset_seconds', 'gs_time_zone'].map((k) => [k, ''])) as Parameters<Template['render']>[0];
    assert.equal(new Template('y', 'account.1.display_name = {{display_name}}\n', 'cfg-lines').render({ ...values, display_name: 'A\naccount.1.password = x' }), 'account.1.display_name = A account.1.password = x\n');
    assert.equal(new Template('x', '<a n="{{display_name}}"/>', 'xml').render({ ...values, display_name: '"><b/>' }), '<a n="&quot;&gt;&lt;b/&gt;"/>');
  });

  test('a password per phone, kept across restarts, renewed when the phone moves extension', () => {
    const d = path.join(dir, 'phones');
    const first = ensurePhoneCredentials(d, [{ mac: 'aa', extension: '201' }, { mac: 'bb', extension: '202' }]);
    assert.deepEqual(first.created, ['aa', 'bb']);
    assert.notEqual(first.credentials.get('aa')?.password, first.credentials.get('bb')?.password);
    assert.match(first.credentials.get('aa')?.password ?? '', /^[A-Za-z0-9]{20}$/);
    assert.equal(statSync(path.join(d, 'phones.json')).mode & 0o777, 0o600);
    const second = ensurePhoneCredentials(d, [{ mac: 'aa', extension: '201' }, { mac: 'bb', extension: '203' }]);
    assert.deepEqual(second.created, ['bb']);
    assert.equal(second.credentials.get('aa')?.password, first.credentials.get('aa')?.password);
    assert.notEqual(second.credentials.get('bb')?.password, first.credentials.get('bb')?.password);
    assert.equal(JSON.parse(readFileSync(path.join(d, 'phones.json'), 'utf8'))['bb'].extension, '203');
  });

  test('a damaged credentials file is refused with its name and left as it is, not replaced', () => {
    const d = path.join(dir, 'phones-damaged');
    mkdirSync(d, { recursive: true });
    const file = path.join(d, 'phones.json');
    writeFileSync(file, '{"aa": {"extension": "201", "passw');
    assert.throws(() => ensurePhoneCredentials(d, [{ mac: 'aa', extension: '201' }]), (err: Error & { code?: string }) => err.code === 'EPHONES' && err.message.includes(file));
    assert.equal(readFileSync(file, 'utf8'), '{"aa": {"extension": "201", "passw');
  });

  test('time zones become standard UTC offsets', () => {
    assert.equal(standardOffsetMinutes('UTC'), 0);
    assert.equal(standardOffsetMinutes('Europe/Berlin'), 60);
    assert.equal(standardOffsetMinutes('America/New_York'), -300);
    assert.equal(standardOffsetMinutes('Australia/Sydney'), 600);
    assert.equal(offsetHours(standardOffsetMinutes('Asia/Kolkata')), '+5:30');
    assert.equal(offsetHours(-210), '-3:30');
    assert.throws(() => standardOffsetMinutes('Mars/Olympus'), /not a known time zone/);
  });
});

describe('the provisioned record', () => {
  test('damaged or incomplete, it is a config error naming the file', () => {
    const stateDir = path.join(dir, 'provisioned-state');
    const file = path.join(provisioningDir(stateDir), PROVISIONED_FILE);
    mkdirSync(path.dirname(file), { recursive: true });
    assert.equal(readProvisioned(path.join(dir, 'never-provisioned')), null);
    for (const body of ['{"site": "site-a", "gra', '{"site": "site-a"}', '[]']) {
      writeFileSync(file, body);
      assert.throws(() => readProvisioned(stateDir), (err: Error & { code?: string }) => err.code === 'ECONFIG' && err.message.startsWith(file));
    }
  });
});
