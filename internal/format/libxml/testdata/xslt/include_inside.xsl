<?xml version="1.0"?>
<!-- Control: including a stylesheet below the stylesheet's own directory is allowed. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="inc/inside.xsl"/>
  <xsl:template match="/"><out><xsl:call-template name="inside"/></out></xsl:template>
</xsl:stylesheet>
