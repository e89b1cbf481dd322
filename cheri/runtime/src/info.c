/*
 * The HPKE info string (shared/hpke.py builds the same bytes). Everything a sealed
 * message belongs to goes into the key schedule through it, so a message replayed
 * to another service, another run's certificate, another request or the other
 * direction fails to open.
 */
#include "internal.h"

int att_service_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > ATT_SERVICE_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int att_serial_valid(const char *s, size_t len)
{
    /* One spelling per serial number: lowercase, no leading zeros, positive. */
    if (s == NULL || len == 0 || len > ATT_SERIAL_MAX || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

int att_info_build(enum att_direction direction, const char *service_id, const char *serial,
                   const uint8_t nonce[ATT_NONCE_LEN], uint8_t *out, size_t out_cap, size_t *out_len)
{
    static const char label[] = ATT_INFO_LABEL;
    struct att_wbuf w;
    size_t id_len, serial_len;

    if (service_id == NULL || serial == NULL || nonce == NULL || out == NULL || out_len == NULL)
        return ATT_E_ARG;
    if (direction != ATT_DIRECTION_REQUEST && direction != ATT_DIRECTION_RESPONSE)
        return ATT_E_ARG;
    /* Bounded scans: one past the limit is enough to refuse. */
    id_len = strnlen(service_id, ATT_SERVICE_ID_MAX + 1u);
    serial_len = strnlen(serial, ATT_SERIAL_MAX + 1u);
    if (!att_service_id_valid(service_id, id_len) || !att_serial_valid(serial, serial_len))
        return ATT_E_ARG;

    w.p = out;
    w.cap = out_cap;
    w.len = 0;
    w.err = 0;
    att_wb_bytes(&w, label, sizeof label - 1);
    att_wb_u8(&w, (uint8_t)direction);
    att_wb_u16(&w, (uint16_t)id_len);
    att_wb_bytes(&w, service_id, id_len);
    att_wb_u16(&w, (uint16_t)serial_len);
    att_wb_bytes(&w, serial, serial_len);
    att_wb_u16(&w, (uint16_t)ATT_NONCE_LEN);
    att_wb_bytes(&w, nonce, ATT_NONCE_LEN);
    if (w.err)
        return ATT_E_SPACE;
    *out_len = w.len;
    return ATT_OK;
}
