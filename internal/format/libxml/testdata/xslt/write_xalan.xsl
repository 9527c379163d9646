<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:redirect="org.apache.xalan.xslt.extensions.Redirect" extension-element-prefixes="redirect">
  <xsl:template match="/">
    <redirect:write file="@OUT@">pwned</redirect:write>
    <out/>
  </xsl:template>
</xsl:stylesheet>
