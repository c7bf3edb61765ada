/* Independent peer: Debian libmodbus as a Modbus TCP master against the emulated device.
 * Prints one "key rc=.. ..." line per operation; the Python test asserts on them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <modbus.h>

static const char *err(void) {
    switch (errno) {
    case EMBXILFUN: return "EMBXILFUN";
    case EMBXILADD: return "EMBXILADD";
    case EMBXILVAL: return "EMBXILVAL";
    case EMBXSFAIL: return "EMBXSFAIL";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "OTHER";
    }
}

static void bits_line(const char *key, int rc, const uint8_t *b, int n) {
    printf("%s rc=%d v=", key, rc);
    for (int i = 0; i < n && rc > 0; i++) putchar(b[i] ? '1' : '0');
    putchar('\n');
}

static void raw_line(modbus_t *ctx, const char *key, const uint8_t *req, int len) {
    uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH];
    int rc = modbus_send_raw_request(ctx, req, len);
    if (rc > 0) rc = modbus_receive_confirmation(ctx, rsp);
    if (rc >= 9) printf("%s rc=%d fc=0x%02x code=%d\n", key, rc, rsp[7], rsp[8]);
    else printf("%s rc=%d err=%s\n", key, rc, err());
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_set_slave(ctx, 1);
    modbus_set_response_timeout(ctx, 2, 0);
    if (modbus_connect(ctx) == -1) { printf("connect fail %s\n", modbus_strerror(errno)); return 3; }
    uint16_t r[130];
    uint8_t b[2100];
    int rc;

    rc = modbus_read_registers(ctx, 10, 3, r);
    printf("read_hr rc=%d v=%u,%u,%u\n", rc, r[0], r[1], r[2]);
    rc = modbus_read_input_registers(ctx, 49, 1, r);
    printf("read_ir rc=%d v=%u\n", rc, r[0]);
    rc = modbus_write_register(ctx, 20, 4242);
    printf("write_hr rc=%d\n", rc);
    uint16_t w[3] = {7, 8, 9};
    rc = modbus_write_registers(ctx, 30, 3, w);
    printf("write_hrs rc=%d\n", rc);
    rc = modbus_read_registers(ctx, 20, 1, r);
    printf("readback_hr rc=%d v=%u\n", rc, r[0]);
    rc = modbus_write_and_read_registers(ctx, 40, 2, w, 39, 4, r);
    printf("rw_hr rc=%d v=%u,%u,%u,%u\n", rc, r[0], r[1], r[2], r[3]);
    rc = modbus_write_bit(ctx, 5, 1);
    printf("write_coil rc=%d\n", rc);
    uint8_t wb[10] = {1, 1, 0, 0, 1, 0, 1, 0, 1, 1};
    rc = modbus_write_bits(ctx, 100, 10, wb);
    printf("write_coils rc=%d\n", rc);
    rc = modbus_read_bits(ctx, 0, 10, b);
    bits_line("read_coils", rc, b, 10);
    rc = modbus_read_bits(ctx, 100, 10, b);
    bits_line("readback_coils", rc, b, 10);
    rc = modbus_read_input_bits(ctx, 0, 11, b);
    bits_line("read_di", rc, b, 11);
    rc = modbus_read_registers(ctx, 0, 125, r);
    printf("read_hr_125 rc=%d last=%u\n", rc, r[124]);
    rc = modbus_read_bits(ctx, 5, 2000, b);
    printf("read_coils_2000 rc=%d\n", rc);

    rc = modbus_read_registers(ctx, 199, 2, r);
    printf("beyond_hr rc=%d err=%s\n", rc, rc < 0 ? err() : "-");
    rc = modbus_read_bits(ctx, 2000, 6, b);
    printf("beyond_coils rc=%d err=%s\n", rc, rc < 0 ? err() : "-");
    rc = modbus_write_bit(ctx, 2005, 1);
    printf("beyond_coil_write rc=%d err=%s\n", rc, rc < 0 ? err() : "-");
    rc = modbus_write_register(ctx, 200, 1);
    printf("beyond_hr_write rc=%d err=%s\n", rc, rc < 0 ? err() : "-");

    const uint8_t fc7[] = {1, 0x07};
    raw_line(ctx, "raw_fc7", fc7, sizeof fc7);
    const uint8_t fc5_bad[] = {1, 0x05, 0x00, 0x01, 0x12, 0x34};
    raw_line(ctx, "raw_fc5_bad", fc5_bad, sizeof fc5_bad);
    const uint8_t fc3_zero[] = {1, 0x03, 0x00, 0x00, 0x00, 0x00};
    raw_line(ctx, "raw_fc3_qty0", fc3_zero, sizeof fc3_zero);

    modbus_set_slave(ctx, MODBUS_TCP_SLAVE);
    rc = modbus_read_registers(ctx, 30, 3, r);
    printf("unit255 rc=%d v=%u,%u,%u\n", rc, r[0], r[1], r[2]);

    modbus_close(ctx);
    modbus_free(ctx);
    return 0;
}
