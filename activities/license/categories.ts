/**
 * Which category an SPDX license falls into. The rules are ordered: the first that matches decides, so the
 * non-commercial and no-derivatives Creative Commons variants are caught before plain CC-BY. An SPDX id that no rule
 * names is `unknown` (and goes to review by default) rather than guessed.
 */
import type { LicenseCategory } from './policy';

const RULES: readonly [LicenseCategory, RegExp][] = [
  ['non-commercial', /^(CC-BY-NC(-.*)?|PolyForm-Noncommercial-.*|.*Non-?Commercial.*|CC-NC-.*|Aladdin)$/i],
  [
    'use-restricted',
    /^(CC-BY-ND-.*|BUSL-1\.1|Elastic-2\.0|PolyForm-Small-Business-.*|Commons-Clause|JSON|Hippocratic-.*|BSD-3-Clause-No-(Military|Nuclear)-.*|SSPL-1\.0|OPUBL-1\.0|CUA-OPL-1\.0|FSL-1\.1-.*|C-UDA-1\.0)$/i,
  ],
  [
    'strong-copyleft',
    /^(A?GPL-.*|CC-BY-SA-.*|OSL-.*|EUPL-.*|ODbL-1\.0|CECILL-(1|2)\.\d+|CECILL-2\.1|RPL-.*|Sleepycat|QPL-1\.0.*|GFDL-.*|CAL-1\.0.*|Parity-.*|RPSL-1\.0|copyleft-next-.*|Watcom-1\.0|SimPL-2\.0|TMate|OGL-UK-.*|CC-SA-1\.0|CERN-OHL-S-2\.0|ESA-PL-strong-copyleft-.*)$/i,
  ],
  [
    'weak-copyleft',
    /^(LGPL.*|MPL-.*|EPL-.*|CDDL-.*|CPL-1\.0|MS-RL|CECILL-C|APSL-.*|IPL-1\.0|SPL-1\.0|NPL-.*|ErlPL-1\.1|CDLA-Sharing-1\.0|Artistic-1\.0.*|LPL-1\.0.*|OFL-.*-RFN|Motosoto|Nokia|NASA-1\.3|RPL|CPAL-1\.0|gSOAP-1\.3b|YPL-1\.[01]|Interbase-1\.0|SISSL.*|SugarCRM-1\.1\.3|MulanPSL-1\.0|Ms-LPL|CERN-OHL-W-2\.0|ESA-PL-weak-copyleft-.*|LPPL-.*)$/i,
  ],
  [
    'permissive',
    /^(MIT(-.*)?|X11(-.*)?|ISC|0BSD|BSD-.*|Apache-.*|Zlib|zlib-acknowledgement|Unlicense|CC0-1\.0|CC-BY-\d.*|BSL-1\.0|PostgreSQL|NCSA|PSF-2\.0|Python-2\.0(\.1)?|Artistic-2\.0|AFL-.*|WTFPL|Unicode-.*|UPL-1\.0|ECL-.*|MS-PL|OFL-.*|PDDL-1\.0|ODC-By-1\.0|CDLA-Permissive-.*|BlueOak-1\.0\.0|MulanPSL-2\.0|Beerware|curl|libpng.*|Info-ZIP|HPND.*|NTP|W3C.*|Ruby|PHP-3\.0.*|etalab-2\.0|CECILL-B|OpenSSL|SSLeay-standalone|ICU|Vim|Zend-2\.0|ZPL-.*|OLDAP-.*|Xnet|Fair|NIST-PD.*|blessing|JasPer-2\.0|Naumen|EFL-.*|Entessa|FSFAP|FSFUL.*|MIT-0|Intel|bzip2-.*|TCL|Spencer-.*|Adobe-.*|DOC|Unlicense-libtelnet|Linux-OpenIB|TU-Berlin-.*|OGL-Canada-2\.0|OGC-1\.0|NLOD-.*|O-UDA-1\.0|C-UDA-1\.0-permissive|Baekmuk|Bitstream-Vera|Xerox|X11-distribute-modifications-variant|mpich2|UCAR|Community-Spec-1\.0|DL-DE-BY-2\.0|DL-DE-ZERO-2\.0|GD|Jam|LiLiQ-P-1\.1|MIT-Modern-Variant|SAX-PD.*|Sendmail.*|SGI-B-2\.0|SMLNJ|StandardML-NJ|Unicode-DFS-.*|W3C-.*|Zed|Zimbra-1\.[34]|Xfig|xinetd|xpp|OpenMDW-1\.0|CERN-OHL-P-2\.0|ESA-PL-permissive-.*|MirOS|IJG(-short)?|libtiff|ImageMagick|CC-PDM-1\.0|CC-PDDC|CNRI-Python.*|OpenSSL-standalone|NTP-0|MIT.*|ISC-.*|Boehm-GC.*|bcrypt-Solar-Designer|Brian-Gladman-.*|DEC-3-Clause|Mackerras-3-Clause.*|UnixCrypt|SSH-short|SSH-OpenSSH|HTMLTIDY|Leptonica|Qhull|libselinux-1\.0|python-ldap|HDF5|NetCDF)$/i,
  ],
];

/**
 * Exceptions that let software link against or use a copyleft component without its terms spreading: a strong
 * copyleft license WITH one of these behaves like a weak one.
 */
const LINKING_EXCEPTIONS =
  /^(Classpath-exception-2\.0|GCC-exception-.*|LLVM-exception|Linux-syscall-note|Universal-FOSS-exception-1\.0|OpenJDK-assembly-exception-1\.0|GNU-compiler-exception|LGPL-3\.0-linking-exception|Qt-LGPL-exception-1\.1|WxWindows-exception-3\.1|eCos-exception-2\.0|Font-exception-2\.0|Libtool-exception|Autoconf-exception-.*|Bison-exception-.*|mif-exception|u-boot-exception-2\.0|Bootloader-exception|gnu-javamail-exception|i2p-gpl-java-exception|OCaml-LGPL-linking-exception|FLTK-exception|Swift-exception|GPL-3\.0-linking-exception|GPL-3\.0-linking-source-exception|GPL-CC-1\.0|openvpn-openssl-exception|Qwt-exception-1\.0|LZMA-exception|Fawkes-Runtime-exception|freertos-exception-2\.0|SHL-2\.[01])$/i;

/** The deprecated `GPL-2.0-with-classpath-exception` style ids carry their exception in the id. */
const DEPRECATED_WITH_EXCEPTION = /^GPL-\d\.\d-with-(classpath|GCC|autoconf|bison|font)-exception$/i;

/** The category of an SPDX license id, optionally with a `WITH` exception. */
export function spdxCategory(id: string, exception?: string): LicenseCategory {
  const base = id.replace(/\+$/, '');
  if (DEPRECATED_WITH_EXCEPTION.test(base)) return 'weak-copyleft';
  const category = RULES.find(([, pattern]) => pattern.test(base))?.[0] ?? 'unknown';
  if (category === 'strong-copyleft' && exception !== undefined && LINKING_EXCEPTIONS.test(exception)) {
    return 'weak-copyleft';
  }
  return category;
}
