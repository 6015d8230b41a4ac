/* SPDX-License-Identifier: Apache-2.0 */
typedef int unused_cmd_info;
