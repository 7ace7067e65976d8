import { describe, expect, it } from 'vitest';
import { connectionKey } from '../../src/relay/connections';

describe('connectionKey', () => {
  it('counts IPv4 per address and IPv6 per /64', () => {
    expect(connectionKey('127.0.0.2')).toBe('127.0.0.2');
    expect(connectionKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(connectionKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(connectionKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(connectionKey('2001:0db8:0001:0002:ffff::')).toBe('2001:db8:1:2::/64');
    expect(connectionKey('2001:db8::5')).toBe('2001:db8:0:0::/64');
    expect(connectionKey('::1')).toBe('0:0:0:0::/64');
    expect(connectionKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });
});
